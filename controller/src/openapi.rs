//! The OpenAPI 3.1 description of the controller API, served at
//! `/openapi.json`. A test checks that every route the router answers is
//! described here and the other way round.

pub const DOCUMENT: &str = r##"{
  "openapi": "3.1.0",
  "info": {
    "title": "firedrill controller",
    "version": "1",
    "description": "Faults, scenarios and mitigation ops for the firedrill lab. Faults and scenarios need the instructor token (Authorization: Bearer); agents use the agent token; ops are open to learners and recorded with their actor."
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
          "service": { "type": "string", "enum": ["gateway","auth","catalog","cache","search","cart","checkout","inventory","payment","payment-provider","shipping","queue","notification","projector","loadgen"], "description": "loadgen takes process faults only" },
          "instance": { "type": "string", "description": "e.g. payment-2" },
          "route": { "type": "string", "description": "route template, e.g. /products/{id}" },
          "peer": { "type": "string", "description": "callee service for a link, or db / queue-consumer" }
        }
      },
      "FaultSpec": {
        "type": "object", "required": ["kind", "target"],
        "properties": {
          "kind": { "type": "string", "enum": ["latency","stall","bandwidth","errors","hang","reset","partition","dns-failure","cert-expiry","clock-skew","cpu-burn","memory-leak","runtime-stall","pool-leak","slow-query","lock-contention","consumer-stall","crash","cache-flush","poison-message","data-corruption","telemetry-drop","worker-pool","lb-skew","traffic-spike","drop-index"] },
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
          "delay": { "$ref": "#/components/schemas/Duration" },
          "ttl": { "description": "cache-flush: TTL of entries stored meanwhile (aligned expiry), at least 100ms", "$ref": "#/components/schemas/Duration" },
          "field": { "type": "string", "description": "data-corruption: numeric JSON field zeroed (and field_*)", "default": "price" },
          "size": { "type": "integer", "minimum": 1, "maximum": 1024, "description": "worker-pool: concurrent requests served" },
          "instance": { "type": "string", "description": "lb-skew: the callee instance favoured, e.g. payment-1" },
          "percent": { "type": "integer", "minimum": 0, "maximum": 100, "default": 90, "description": "lb-skew: share of calls sent to instance" },
          "multiplier": { "type": "number", "exclusiveMinimum": 1, "maximum": 50, "description": "traffic-spike: rate multiplier" },
          "hotKey": { "type": "integer", "minimum": 1, "description": "traffic-spike: product id every extra journey views" },
          "index": { "type": "string", "description": "drop-index: index name (default: the service's hot index)" }
        }
      },
      "Inject": {
        "allOf": [ { "$ref": "#/components/schemas/FaultSpec" } ],
        "required": ["duration"],
        "properties": { "duration": { "$ref": "#/components/schemas/Duration" } }
      },
      "Op": {
        "type": "object", "required": ["op", "actor"], "additionalProperties": false,
        "properties": {
          "op": { "type": "string", "enum": ["rollback","restart","scale","drain","undrain","config-set","flag-set","rate-limit","dlq-replay","dlq-purge","no-action"] },
          "target": { "type": "string", "description": "catalog, payment-2, gateway->catalog" },
          "actor": { "type": "string", "minLength": 1, "maxLength": 64 }
        }
      }
    },
    "responses": {
      "BadRequest": { "description": "Malformed input", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": { "description": "Token missing", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Forbidden": { "description": "Token wrong", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "NotFound": { "description": "Unknown id", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    }
  },
  "paths": {
    "/health": { "get": { "summary": "Liveness", "responses": { "200": { "description": "OK" } } } },
    "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OK" } } } },
    "/metrics": { "get": { "summary": "Controller metrics (OpenMetrics)", "responses": { "200": { "description": "OK" } } } },
    "/v1/agent/faults": {
      "get": {
        "summary": "The faults one process must apply, with a lease",
        "security": [ { "agent": [] } ],
        "parameters": [
          { "name": "service", "in": "query", "required": true, "schema": { "type": "string" } },
          { "name": "instance", "in": "query", "required": true, "schema": { "type": "string" } }
        ],
        "responses": { "200": { "description": "Assignment" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/faults": {
      "post": {
        "summary": "Inject a fault",
        "security": [ { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Inject" } } } },
        "responses": { "201": { "description": "Injected" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "get": {
        "summary": "Faults in force, manual and from the running scenario",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Faults" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "delete": {
        "summary": "Clear every manual fault and stop the running scenario",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Cleared" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
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
        "responses": { "200": { "description": "Scenarios" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/scenarios/{id}": {
      "get": {
        "summary": "One scenario, with its ground truth",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "responses": { "200": { "description": "Scenario" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/scenarios/{id}/start": {
      "post": {
        "summary": "Start a scenario; answers the page text",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "speed": { "type": "number", "minimum": 1, "maximum": 1000, "description": "Play the timeline this many times faster" } } } } } },
        "responses": { "201": { "description": "Started" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "description": "Another scenario is running", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } }
      }
    },
    "/v1/scenario": {
      "get": {
        "summary": "The running scenario and its clock",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Running scenario or null" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "delete": {
        "summary": "Stop the running scenario",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Stopped" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/ops": {
      "post": {
        "summary": "Perform a mitigation op (recorded with time and actor)",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Op" } } } },
        "responses": { "201": { "description": "Performed" }, "400": { "$ref": "#/components/responses/BadRequest" }, "404": { "$ref": "#/components/responses/NotFound" } }
      },
      "get": {
        "summary": "The ops log",
        "responses": { "200": { "description": "Ops" } }
      }
    }
  }
}"##;
