"""Builders for classic Grafana dashboard JSON (schemaVersion 42, Grafana 13).

Only current panel types are produced (timeseries, stat, gauge, bargauge,
table, heatmap, state-timeline, nodeGraph). Every panel queries through the
dashboard's `datasource` variable, carries a unit, and is placed on the
24-column grid left to right, top to bottom.
"""

SCHEMA_VERSION = 42
PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}


def query(expr, legend="", *, instant=False, exemplar=False, fmt=None, interval=""):
    """One PromQL target. `fmt`: time_series (default), table or heatmap."""
    fmt = fmt or ("table" if instant else "time_series")
    target = {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
        "exemplar": exemplar,
    }
    if interval:
        target["interval"] = interval
    return target


def thresholds(*steps):
    """steps: (value or None for the base, color)."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


GREEN = thresholds((None, "green"))


def _panel(kind, title, description, targets, unit, *, w, h, options, custom=None,
           decimals=None, minimum=None, maximum=None, steps=None, mappings=None,
           overrides=None, transformations=None, color=None):
    for i, target in enumerate(targets):
        target.setdefault("refId", chr(ord("A") + i))
    defaults = {"unit": unit, "thresholds": steps or GREEN, "mappings": mappings or []}
    if color:
        defaults["color"] = color
    if custom is not None:
        defaults["custom"] = custom
    if decimals is not None:
        defaults["decimals"] = decimals
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": PROMETHEUS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options,
        "targets": targets,
    }
    if transformations:
        panel["transformations"] = transformations
    return panel


def _legend(table=False):
    return {
        "showLegend": True,
        "displayMode": "table" if table else "list",
        "placement": "bottom",
        "calcs": ["mean", "max", "lastNotNull"] if table else [],
    }


def timeseries(title, description, targets, unit, *, w=12, h=8, stack=False,
               minimum=None, maximum=None, steps=None, threshold_lines=False,
               legend_table=False, overrides=None, draw="line"):
    custom = {
        "drawStyle": draw,
        "lineWidth": 1,
        "fillOpacity": 10 if not stack else 60,
        "gradientMode": "none",
        "showPoints": "never",
        "spanNulls": False,
        "axisPlacement": "auto",
        "axisSoftMin": 0,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"},
    }
    options = {
        "legend": _legend(legend_table),
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel("timeseries", title, description, targets, unit, w=w, h=h,
                  options=options, custom=custom, minimum=minimum,
                  maximum=maximum, steps=steps, overrides=overrides)


def stat(title, description, targets, unit, *, w=6, h=4, steps=None,
         decimals=None, mappings=None, color_mode="value"):
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "area",
        "justifyMode": "auto",
        "textMode": "auto",
        "orientation": "auto",
        "wideLayout": True,
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
    }
    return _panel("stat", title, description, targets, unit, w=w, h=h,
                  options=options, steps=steps, decimals=decimals,
                  mappings=mappings)


def gauge(title, description, targets, unit, *, w=6, h=6, steps=None,
          minimum=0, maximum=1):
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "auto",
        "showThresholdLabels": False,
        "showThresholdMarkers": True,
        "minVizHeight": 75,
        "minVizWidth": 75,
        "sizing": "auto",
        "shape": "gauge",
        "barShape": "flat",
        "barWidthFactor": 0.5,
        "segmentCount": 1,
        "segmentSpacing": 0.3,
        "effects": {},
    }
    return _panel("gauge", title, description, targets, unit, w=w, h=h,
                  options=options, steps=steps, minimum=minimum, maximum=maximum)


def bargauge(title, description, targets, unit, *, w=12, h=8, steps=None,
             minimum=None, maximum=None):
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "horizontal",
        "displayMode": "gradient",
        "valueMode": "color",
        "namePlacement": "auto",
        "showUnfilled": True,
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "maxVizHeight": 300,
        "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []},
    }
    return _panel("bargauge", title, description, targets, unit, w=w, h=h,
                  options=options, steps=steps, minimum=minimum, maximum=maximum)


def table(title, description, targets, unit, *, w=24, h=8, transformations=None,
          overrides=None):
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "frameIndex": 0,
    }
    custom = {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False}
    return _panel("table", title, description, targets, unit, w=w, h=h,
                  options=options, custom=custom,
                  transformations=transformations, overrides=overrides)


def heatmap(title, description, target, unit, *, w=12, h=8):
    options = {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark-orange",
                  "scale": "exponential", "exponent": 0.5, "steps": 64,
                  "reverse": False},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": unit},
        "cellValues": {"unit": "reqps"},
        "showValue": "never",
    }
    custom = {"hideFrom": {"legend": False, "tooltip": False, "viz": False},
              "scaleDistribution": {"type": "linear"}}
    return _panel("heatmap", title, description, [target], unit, w=w, h=h,
                  options=options, custom=custom)


def state_timeline(title, description, targets, unit, *, w=24, h=8, mappings=None,
                   steps=None):
    options = {
        "showValue": "never",
        "mergeValues": True,
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    custom = {"fillOpacity": 80, "lineWidth": 0,
              "hideFrom": {"legend": False, "tooltip": False, "viz": False}}
    return _panel("state-timeline", title, description, targets, unit, w=w, h=h,
                  options=options, custom=custom, mappings=mappings, steps=steps)


def node_graph(title, description, nodes, edges, unit, *, w=24, h=12):
    """nodes/edges: instant table queries whose labels are already named the
    way the node graph wants them (id, title / id, source, target)."""
    options = {
        "nodes": {"mainStatUnit": unit},
        "edges": {"mainStatUnit": unit},
        "zoomMode": "cooperative",
    }
    rename = {"Value #nodes": "mainstat", "Value #edges": "mainstat"}
    transformations = [{
        "id": "organize",
        "options": {"excludeByName": {"Time": True}, "renameByName": rename,
                    "indexByName": {}, "includeByName": {}},
    }]
    nodes["refId"] = "nodes"
    edges["refId"] = "edges"
    return _panel("nodeGraph", title, description, [nodes, edges], unit, w=w, h=h,
                  options=options, transformations=transformations)


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"w": 24, "h": 1}}


def value_mappings(pairs):
    """pairs: (value, text, color)."""
    return [{
        "type": "value",
        "options": {str(v): {"text": text, "color": color, "index": i}
                    for i, (v, text, color) in enumerate(pairs)},
    }]


def datasource_variable():
    return {
        "type": "datasource",
        "name": "datasource",
        "label": "Prometheus",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_variable(name, label, definition, current, *, include_all=False,
                   multi=False):
    """A variable filled from Prometheus: `definition` is label_values(...)."""
    if include_all:
        cur = {"text": ["All"], "value": ["$__all"]} if multi else {"text": "All", "value": "$__all"}
    else:
        cur = {"text": current, "value": current}
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": PROMETHEUS,
        "definition": definition,
        "query": {"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": cur,
        "hide": 0,
        "includeAll": include_all,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "skipUrlSync": False,
        **({"allValue": ".*"} if include_all else {}),
    }


def annotation_builtin():
    return {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


def annotation(name, expr, title, text, color):
    """An annotation from a PromQL query: a marker where the query has data."""
    return {
        "datasource": PROMETHEUS,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "name": name,
        "target": {"refId": "Anno", "expr": expr, "interval": "60s"},
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": "job",
        "useValueForTime": False,
    }


def layout(panels):
    """Assigns ids and grid positions: rows start a new line; other panels
    flow left to right and wrap at 24 columns."""
    x = y = line_h = 0
    next_id = 1
    for panel in panels:
        w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if panel["type"] == "row" or x + w > 24:
            y += line_h
            x = line_h = 0
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        panel["id"] = next_id
        next_id += 1
        if panel["type"] == "row":
            y += h
            continue
        x += w
        line_h = max(line_h, h)
    return panels


def dashboard(uid, title, description, panels, *, variables=(), annotations=(),
              tags=(), links=True, time_from="now-1h", refresh="30s"):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["firedrill", *tags],
        "editable": False,
        "graphTooltip": 1,
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [{
            "type": "dashboards",
            "title": "firedrill",
            "tags": ["firedrill"],
            "asDropdown": True,
            "includeVars": False,
            "keepTime": True,
            "icon": "external link",
            "targetBlank": False,
            "tooltip": "",
            "url": "",
        }] if links else [],
        "annotations": {"list": [annotation_builtin(), *annotations]},
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": layout(panels),
    }
