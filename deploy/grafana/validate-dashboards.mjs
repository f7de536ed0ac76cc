// Validates classic Grafana dashboard JSON against Grafana's own schema,
// without a Grafana server.
//
//   node deploy/grafana/validate-dashboards.mjs NODE_MODULES DASHBOARD.json...
//
// NODE_MODULES holds @grafana/schema (the TypeScript types Grafana generates
// from its CUE schemas, one release per Grafana release), and
// ts-json-schema-generator and ajv (scripts/deps/deploy-validators installs
// them). The types are turned into JSON Schema and each dashboard checked:
//
// * the dashboard model (raw/dashboard): every field known, every enum
//   value valid, unknown fields rejected;
// * each panel's `options` and `fieldConfig.defaults.custom` against the
//   panel plugin's own schema (raw/composable/<plugin>/panelcfg), so a
//   misspelled or removed option is caught as Grafana's editor would;
// * `schemaVersion` equal to the version Grafana writes today, so loading
//   runs no migration at all.
//
// Exit status 1 and one line per problem if anything is wrong.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error("usage: validate-dashboards.mjs NODE_MODULES DASHBOARD.json...");
  process.exit(2);
}
const require = createRequire(join(modules, "noop.js"));
const { createGenerator } = require("ts-json-schema-generator");
const Ajv = require("ajv");
const schemaPkg = join(modules, "@grafana", "schema");
const types = join(schemaPkg, "dist", "types", "raw");

// Panel plugin id -> folder of its schema in @grafana/schema.
const PLUGINS = {
  timeseries: "timeseries",
  stat: "stat",
  gauge: "gauge",
  bargauge: "bargauge",
  table: "table",
  heatmap: "heatmap",
  "state-timeline": "statetimeline",
  "status-history": "statushistory",
  nodeGraph: "nodegraph",
  logs: "logs",
  text: "text",
};

function schemaOf(path, type) {
  const generator = createGenerator({ path, type, skipTypeCheck: true, additionalProperties: false });
  return generator.createSchema(type);
}

const ajv = new Ajv({ allErrors: true, strict: false });
const dashboardSchema = schemaOf(join(types, "dashboard", "x", "types.gen.d.ts"), "Dashboard");
// Open in Grafana's CUE schema (a `...` catch-all for datasource-specific
// fields, which the TypeScript types cannot express): a Prometheus
// annotation's titleFormat, a query variable's definition.
for (const open of ["AnnotationQuery", "AnnotationTarget", "VariableModel"]) {
  if (!dashboardSchema.definitions[open]) throw new Error(`schema has no ${open}`);
  delete dashboardSchema.definitions[open].additionalProperties;
}
// AnnotationTarget's required fields (limit, matchAny, tags, type) are those
// of Grafana's built-in annotations; a datasource annotation's target is
// that datasource's query (for Prometheus: refId, expr, interval).
delete dashboardSchema.definitions.AnnotationTarget.required;
const validateDashboard = ajv.compile(dashboardSchema);

// The schema version Grafana writes: the default of the dashboard model.
const defaults = require(join(schemaPkg, "dist", "cjs", "raw", "dashboard", "x", "types.gen.cjs"));
const currentSchemaVersion = defaults.defaultDashboard.schemaVersion;

const pluginValidators = new Map();
function pluginValidator(plugin, type) {
  const key = `${plugin}/${type}`;
  if (!pluginValidators.has(key)) {
    const folder = PLUGINS[plugin];
    let validate = null;
    if (folder) {
      const path = join(types, "composable", folder, "panelcfg", "x", "types.gen.d.ts");
      const source = readFileSync(path, "utf8");
      if (new RegExp(`export interface ${type}\\b`).test(source)) {
        validate = ajv.compile(schemaOf(path, type));
      }
    }
    pluginValidators.set(key, validate);
  }
  return pluginValidators.get(key);
}

function describe(errors) {
  return errors
    .map((e) => `${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}${e.params?.allowedValues ? ` ${JSON.stringify(e.params.allowedValues)}` : ""}`)
    .join("; ");
}

let problems = 0;
const report = (file, text) => {
  problems += 1;
  console.log(`${file}: ${text}`);
};

for (const file of files) {
  const dashboard = JSON.parse(readFileSync(file, "utf8"));
  if (!validateDashboard(dashboard)) {
    report(file, `dashboard model: ${describe(validateDashboard.errors)}`);
  }
  if (dashboard.schemaVersion !== currentSchemaVersion) {
    report(file, `schemaVersion ${dashboard.schemaVersion}, Grafana writes ${currentSchemaVersion} (an older one is migrated on load)`);
  }
  const panels = (dashboard.panels || []).flatMap((p) => [p, ...(p.panels || [])]);
  for (const panel of panels) {
    if (panel.type === "row") continue;
    if (!(panel.type in PLUGINS)) {
      report(file, `panel "${panel.title}": no schema for panel type ${panel.type}`);
      continue;
    }
    const options = pluginValidator(panel.type, "Options");
    if (options && !options(panel.options ?? {})) {
      report(file, `panel "${panel.title}" (${panel.type}) options: ${describe(options.errors)}`);
    }
    const custom = pluginValidator(panel.type, "FieldConfig");
    const value = panel.fieldConfig?.defaults?.custom;
    if (custom && value !== undefined && !custom(value)) {
      report(file, `panel "${panel.title}" (${panel.type}) fieldConfig.defaults.custom: ${describe(custom.errors)}`);
    }
  }
}

console.log(`${files.length} dashboards checked against @grafana/schema ${require(join(schemaPkg, "package.json")).version}: ${problems} problems`);
process.exit(problems === 0 ? 0 : 1);
