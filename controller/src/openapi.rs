//! The OpenAPI 3.1 description of the controller API, served at
//! `/openapi.json`. `tests/fuzz.rs` runs Schemathesis against it: every
//! answer must be documented here and match its schema, and no input may
//! cause a 5xx. Schemas describe shapes (patterns keep generated targets
//! mostly valid, so fuzzing reaches the logic behind them); meaning (a
//! duration within 24 h, an op's target fitting the op) is checked by the
//! handlers, which answer 400 with a message.

pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {
    "title": "firedrill controller",
    "version": "1",
    "description": "Faults, scenarios, deploys and mitigation ops for the firedrill lab. Faults, scenarios and deploys need the instructor token (Authorization: Bearer); agents use the agent token; ops are open to learners and recorded with their actor."
  },
  "components": {
    "securitySchemes": {
      "instructor": { "type": "http", "scheme": "bearer" },
      "agent": { "type": "http", "scheme": "bearer" }
    },
    "schemas": {
      "Error": {
        "type": "object", "required": ["error"],
        "properties": { "error": { "type": "string", "description": "What was wrong." } }
      },
      "Duration": {
        "description": "Milliseconds, or text such as \"300ms\", \"2s\", \"1m\".",
        "oneOf": [ { "type": "integer", "minimum": 0 }, { "type": "string" } ]
      },
      "Target": {
        "type": "object", "required": ["service"], "additionalProperties": false,
        "properties": {
          "service": { "type": "string", "enum": ["gateway","auth","catalog","cache","search","cart","checkout","inventory","payment","payment-provider","shipping","queue","notification","projector"] },
          "instance": { "type": "string", "pattern": "^[a-z-]+-[1-9][0-9]{0,8}$", "description": "e.g. payment-2" },
          "version": { "type": "string", "pattern": "^[A-Za-z0-9._+-]{1,64}$", "description": "only processes running this service.version, e.g. 2.4.0" },
          "route": { "type": "string", "pattern": "^/", "description": "route template, e.g. /products/{id}" },
          "peer": { "type": "string", "enum": ["gateway","auth","catalog","cache","search","cart","checkout","inventory","payment","payment-provider","shipping","queue","notification","projector","db","queue-consumer"], "description": "callee service for a link, or db / queue-consumer" }
        }
      },
      "FaultSpec": {
        "type": "object", "required": ["kind", "target"],
        "properties": {
          "kind": { "type": "string", "enum": ["latency","stall","bandwidth","errors","hang","reset","partition","dns-failure","cert-expiry","clock-skew","cpu-burn","memory-leak","runtime-stall","pool-leak","slow-query","lock-contention","consumer-stall","crash"] },
          "target": { "$ref": "#/components/schemas/Target" },
          "toxicity": { "type": "number", "minimum": 0, "maximum": 1, "default": 1 },
          "latency": { "$ref": "#/components/schemas/Duration" },
          "jitter": { "$ref": "#/components/schemas/Duration" },
          "min": { "$ref": "#/components/schemas/Duration" },
          "max": { "$ref": "#/components/schemas/Duration" },
          "rate": { "type": "integer", "minimum": 1 },
          "limit": { "type": "integer", "minimum": 32 },
          "code": { "type": "integer", "minimum": 400, "maximum": 599 },
          "timeOffset": { "description": "e.g. -90s", "oneOf": [ { "type": "integer" }, { "type": "string" } ] },
          "threads": { "type": "integer", "minimum": 1, "maximum": 8 },
          "every": { "$ref": "#/components/schemas/Duration" },
          "block": { "$ref": "#/components/schemas/Duration" },
          "hold": { "$ref": "#/components/schemas/Duration" },
          "delay": { "$ref": "#/components/schemas/Duration" }
        }
      },
      "Inject": {
        "allOf": [ { "$ref": "#/components/schemas/FaultSpec" } ],
        "required": ["duration"],
        "properties": { "duration": { "$ref": "#/components/schemas/Duration" } }
      },
      "Deploy": {
        "type": "object", "required": ["target", "version"], "additionalProperties": false,
        "properties": {
          "target": { "type": "string", "pattern": "^(gateway|auth|catalog|cache|search|cart|checkout|inventory|payment|payment-provider|shipping|queue|notification|projector)(-[1-9][0-9]{0,8})?$", "description": "a service or one instance: catalog, catalog-2" },
          "version": { "type": "string", "pattern": "^[A-Za-z0-9._+-]{1,64}$", "description": "the new service.version, e.g. 2.4.0" },
          "instances": { "type": "integer", "minimum": 1, "description": "a canary: only this many instances (the lowest-numbered)" },
          "actor": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S", "description": "who deploys (default: instructor)" }
        }
      },
      "Op": {
        "type": "object", "required": ["op", "actor"], "additionalProperties": false,
        "properties": {
          "op": { "type": "string", "enum": ["rollback","restart","scale","drain","undrain","config-set","flag-set","rate-limit","dlq-replay","dlq-purge","no-action"] },
          "target": { "type": "string", "pattern": "^(gateway|auth|catalog|cache|search|cart|checkout|inventory|payment|payment-provider|shipping|queue|notification|projector)(-[1-9][0-9]{0,8})?(@[A-Za-z0-9._+-]{1,64})?(->(gateway|auth|catalog|cache|search|cart|checkout|inventory|payment|payment-provider|shipping|queue|notification|projector|db|queue-consumer))?$", "description": "catalog, payment-2, gateway->catalog, catalog@2.4.0 (not needed for no-action)" },
          "actor": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S" }
        }
      },
      "Health": {
        "type": "object", "required": ["status"],
        "properties": { "status": { "type": "string" } }
      },
      "FaultSpecOut": {
        "type": "object", "required": ["kind", "target", "toxicity"],
        "properties": {
          "kind": { "type": "string" },
          "target": { "type": "object", "required": ["service"], "properties": { "service": { "type": "string" } } },
          "toxicity": { "type": "number" }
        }
      },
      "StoredFault": {
        "type": "object", "required": ["id", "spec", "createdMs", "expiresMs"],
        "properties": {
          "id": { "type": "string" },
          "spec": { "$ref": "#/components/schemas/FaultSpecOut" },
          "createdMs": { "type": "integer" },
          "expiresMs": { "type": "integer" }
        }
      },
      "ActiveFaults": {
        "type": "object", "required": ["faults"],
        "properties": { "faults": { "type": "array", "items": {
          "type": "object", "required": ["id", "origin", "spec", "endsMs"],
          "properties": {
            "id": { "type": "string" },
            "origin": { "type": "string", "description": "manual, or scenario:<id>" },
            "spec": { "$ref": "#/components/schemas/FaultSpecOut" },
            "endsMs": { "type": ["integer", "null"], "description": "null while the fault waits for a mitigation" }
          }
        } } }
      },
      "Assignment": {
        "type": "object", "required": ["leaseMs", "faults"],
        "properties": {
          "leaseMs": { "type": "integer", "minimum": 0 },
          "faults": { "type": "array", "items": {
            "type": "object", "required": ["id", "spec", "remainingMs"],
            "properties": {
              "id": { "type": "string" },
              "spec": { "$ref": "#/components/schemas/FaultSpecOut" },
              "remainingMs": { "type": "integer", "minimum": 0 }
            }
          } }
        }
      },
      "RunningScenario": {
        "type": "object", "required": ["id", "startedMs", "mitigatedMs"],
        "properties": {
          "id": { "type": "string" },
          "startedMs": { "type": "integer" },
          "mitigatedMs": { "type": ["integer", "null"] },
          "speed": { "type": "number", "description": "how much faster than written the timeline plays" }
        }
      },
      "OpRecord": {
        "type": "object", "required": ["atMs", "actor", "op", "target", "result"],
        "properties": {
          "atMs": { "type": "integer" },
          "actor": { "type": "string" },
          "op": { "type": "string" },
          "target": { "type": "string" },
          "result": { "type": "string", "description": "what the op did, in words" }
        }
      },
      "DeployRecord": {
        "type": "object", "required": ["id", "atMs", "actor", "service", "change", "versions", "previous"],
        "properties": {
          "id": { "type": "string" },
          "atMs": { "type": "integer" },
          "actor": { "type": "string" },
          "service": { "type": "string" },
          "change": { "type": "string", "enum": ["deploy", "rollback"] },
          "versions": { "type": "object", "additionalProperties": { "type": "string" }, "description": "instance -> version after the change" },
          "previous": { "type": "object", "additionalProperties": { "type": "string" }, "description": "instance -> version before it" },
          "rolledBackMs": { "type": "integer" },
          "origin": { "type": "string" }
        }
      }
    },
    "responses": {
      "BadRequest": { "description": "Malformed input", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": { "description": "Token missing", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Forbidden": { "description": "Token wrong", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "NotFound": { "description": "Unknown id", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "TooLarge": { "description": "Body larger than the limit", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "NotJson": { "description": "Body is not declared as application/json", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Conflict": { "description": "The state or the deployment does not allow it", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    }
  },
  "paths": {
    "/health": { "get": { "summary": "Liveness", "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } } } } },
    "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
    "/metrics": { "get": { "summary": "Controller metrics (OpenMetrics)", "responses": { "200": { "description": "OK", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } } } },
    "/v1/agent/faults": {
      "get": {
        "summary": "The faults one process must apply, with a lease",
        "security": [ { "agent": [] } ],
        "parameters": [
          { "name": "service", "in": "query", "required": true, "schema": { "type": "string" }, "description": "e.g. catalog" },
          { "name": "instance", "in": "query", "required": true, "schema": { "type": "string" }, "description": "e.g. catalog-2" },
          { "name": "version", "in": "query", "required": false, "schema": { "type": "string" }, "description": "the service.version the process runs; faults aimed at a version reach only processes that report it" }
        ],
        "responses": { "200": { "description": "Assignment", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Assignment" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/faults": {
      "post": {
        "summary": "Inject a fault",
        "security": [ { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Inject" } } } },
        "responses": { "201": { "description": "Injected", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StoredFault" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      },
      "get": {
        "summary": "Faults in force, manual and from the running scenario",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Faults", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ActiveFaults" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "delete": {
        "summary": "Clear every manual fault and stop the running scenario",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Cleared", "content": { "application/json": { "schema": { "type": "object", "required": ["cleared", "stoppedScenario"], "properties": { "cleared": { "type": "integer" }, "stoppedScenario": { "type": ["string", "null"] } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/faults/{id}": {
      "delete": {
        "summary": "Clear one manual fault",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "responses": { "204": { "description": "Cleared" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/scenarios": {
      "get": {
        "summary": "The scenario catalogue",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Scenarios", "content": { "application/json": { "schema": { "type": "object", "required": ["scenarios"], "properties": { "scenarios": { "type": "array", "items": { "type": "object", "required": ["id", "title", "difficulty", "category"], "properties": { "id": { "type": "string" }, "title": { "type": "string" }, "difficulty": { "type": "string" }, "category": { "type": "string" } } } } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/scenarios/{id}": {
      "get": {
        "summary": "One scenario, with its ground truth",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "responses": { "200": { "description": "Scenario", "content": { "application/json": { "schema": { "type": "object", "required": ["id", "title", "page", "steps", "truth", "mitigation"] } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/scenarios/{id}/start": {
      "post": {
        "summary": "Start a scenario; answers the page text",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "speed": { "type": "number", "minimum": 1, "maximum": 1000, "description": "Play the timeline this many times faster" } } } } } },
        "responses": { "201": { "description": "Started", "content": { "application/json": { "schema": { "type": "object", "required": ["scenario", "page"], "properties": { "scenario": { "$ref": "#/components/schemas/RunningScenario" }, "page": { "type": "string" } } } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "description": "Another scenario is running, or the scenario deploys and the controller has no process control", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } }
      }
    },
    "/v1/scenario": {
      "get": {
        "summary": "The running scenario and its clock",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Running scenario or null", "content": { "application/json": { "schema": { "type": "object", "required": ["scenario"], "properties": { "scenario": { "oneOf": [ { "type": "null" }, { "$ref": "#/components/schemas/RunningScenario" } ] } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "delete": {
        "summary": "Stop the running scenario",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Stopped", "content": { "application/json": { "schema": { "type": "object", "required": ["stopped"], "properties": { "stopped": { "type": "string" } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/deploys": {
      "post": {
        "summary": "Roll a service (or one instance) to a version: a rolling restart under firedrill up",
        "security": [ { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Deploy" } } } },
        "responses": { "201": { "description": "Rolling out", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeployRecord" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      },
      "get": {
        "summary": "The deploy history and the version each changed instance should run",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Deploys", "content": { "application/json": { "schema": { "type": "object", "required": ["deploys", "versions", "processControl"], "properties": { "deploys": { "type": "array", "items": { "$ref": "#/components/schemas/DeployRecord" } }, "versions": { "type": "object", "additionalProperties": { "type": "object", "additionalProperties": { "type": "string" } } }, "processControl": { "type": "boolean", "description": "false outside firedrill up: deploys cannot act" } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/ops": {
      "post": {
        "summary": "Perform a mitigation op (recorded with time and actor)",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Op" } } } },
        "responses": { "201": { "description": "Performed", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OpRecord" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      },
      "get": {
        "summary": "The ops log",
        "responses": { "200": { "description": "Ops", "content": { "application/json": { "schema": { "type": "object", "required": ["ops"], "properties": { "ops": { "type": "array", "items": { "$ref": "#/components/schemas/OpRecord" } } } } } } } }
      }
    }
  }
}"##;

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_with_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for route in [
            "/health",
            "/openapi.json",
            "/metrics",
            "/v1/agent/faults",
            "/v1/faults",
            "/v1/faults/{id}",
            "/v1/scenarios",
            "/v1/scenarios/{id}",
            "/v1/scenarios/{id}/start",
            "/v1/scenario",
            "/v1/ops",
            "/v1/deploys",
        ] {
            assert!(paths.contains(&route), "{route} is not described");
        }
        assert_eq!(paths.len(), 12, "{paths:?}");
    }
}
