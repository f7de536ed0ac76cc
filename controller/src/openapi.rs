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
    "description": "Faults, scenarios, deploys, learners, lab resets and mitigation ops for the firedrill lab. Every operation states who may call it in `x-role` and `security`: the instructor token (faults, scenarios, deploys, learners, resets), a learner token or the instructor's (ops; a learner is recorded as themselves), the agent token (fault agents), or anyone (health, this document, metrics). Send tokens as Authorization: Bearer; a missing token is 401, a token that does not reach the operation 403, checked before anything else of the request is read."
  },
  "components": {
    "securitySchemes": {
      "instructor": { "type": "http", "scheme": "bearer" },
      "learner": { "type": "http", "scheme": "bearer", "description": "one token per learner: the lab's own (the run directory's learner-token) or one `firedrill learner add` printed" },
      "agent": { "type": "http", "scheme": "bearer" },
      "alerts": { "type": "http", "scheme": "bearer", "description": "Prometheus' or Alertmanager's token for posting alerts, and nothing else" }
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
          "instance": { "type": "string", "pattern": "^[a-z-]+-[1-9][0-9]{0,8}$", "description": "e.g. payment-2" },
          "version": { "type": "string", "pattern": "^[A-Za-z0-9._+-]{1,64}$", "description": "only processes running this service.version, e.g. 2.4.0" },
          "route": { "type": "string", "pattern": "^/", "description": "route template, e.g. /products/{id}" },
          "peer": { "type": "string", "enum": ["gateway","auth","catalog","cache","search","cart","checkout","inventory","payment","payment-provider","shipping","queue","notification","projector","db","queue-consumer"], "description": "callee service for a link, or db / queue-consumer" }
        }
      },
      "FaultSpec": {
        "type": "object", "required": ["kind", "target"],
        "properties": {
          "kind": { "type": "string", "enum": ["latency","stall","bandwidth","errors","hang","reset","partition","dns-failure","dns-stale","retry-amplification","cert-expiry","clock-skew","log-flood","cpu-burn","memory-leak","runtime-stall","pool-leak","slow-query","lock-contention","consumer-stall","crash","config-push","cache-flush","poison-message","data-corruption","telemetry-drop","worker-pool","lb-skew","traffic-spike","drop-index","disk-full"] },
          "target": { "$ref": "#/components/schemas/Target" },
          "toxicity": { "type": "number", "minimum": 0, "maximum": 1, "default": 1 },
          "latency": { "$ref": "#/components/schemas/Duration" },
          "jitter": { "$ref": "#/components/schemas/Duration" },
          "min": { "$ref": "#/components/schemas/Duration" },
          "max": { "$ref": "#/components/schemas/Duration" },
          "rate": { "type": "integer", "minimum": 1, "description": "bandwidth: bytes/s; memory-leak: MiB/s; log-flood: records/s (at most 100000)" },
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
          "journey": { "type": "string", "enum": ["browse","search","view_product","login","add_to_cart","view_cart","checkout"], "description": "traffic-spike: every extra journey is of this kind (checkout: a flash sale); not with hotKey" },
          "index": { "type": "string", "description": "drop-index: index name (default: the service's hot index)" },
          "address": { "type": "string", "description": "dns-stale: host:port the stale record points to (default 127.0.0.1:1, where nothing listens)" },
          "bytes": { "type": "integer", "minimum": 16, "maximum": 65536, "default": 512, "description": "log-flood: bytes of detail in each record" },
          "attempts": { "type": "integer", "minimum": 1, "maximum": 20, "default": 5, "description": "retry-amplification: retries per failed call, unjittered and unbudgeted" },
          "direction": { "type": "string", "enum": ["both","upstream","downstream"], "default": "both", "description": "partition: upstream cuts requests (refused), downstream loses the answers (the callee does the work, the caller times out)" },
          "timeouts": { "$ref": "#/components/schemas/ConfigValues/properties/timeouts" },
          "retries": { "$ref": "#/components/schemas/ConfigValues/properties/retries" },
          "breaker": { "$ref": "#/components/schemas/ConfigValues/properties/breaker" },
          "db": { "$ref": "#/components/schemas/ConfigValues/properties/db" },
          "rateLimits": { "$ref": "#/components/schemas/ConfigValues/properties/rateLimits" },
          "flags": { "$ref": "#/components/schemas/ConfigValues/properties/flags" }
        }
      },
      "ConfigValues": {
        "description": "Live config values that differ from a service's flags. A config-push fault carries them as its parameters (only on a service, never an instance; no toxicity); agents receive them in their assignment.",
        "type": "object", "additionalProperties": false,
        "properties": {
          "timeouts": { "type": "object", "description": "Per-attempt timeout of calls to a peer service, by peer: 1ms..60s.", "additionalProperties": { "$ref": "#/components/schemas/Duration" } },
          "retries": {
            "type": "object", "additionalProperties": false,
            "properties": {
              "count": { "type": "integer", "minimum": 0, "maximum": 10, "description": "Retries after a failed idempotent call." },
              "budget": { "type": "number", "minimum": 0, "maximum": 1, "description": "Retries allowed per call made (none: no budget)." },
              "jitter": { "type": "boolean", "description": "Randomised backoff." }
            }
          },
          "breaker": {
            "type": "object", "additionalProperties": false,
            "properties": {
              "failureThreshold": { "type": "integer", "minimum": 0, "maximum": 1000, "description": "Consecutive failures that open a caller's breaker towards an instance; 0: never opens." },
              "cooldown": { "allOf": [{ "$ref": "#/components/schemas/Duration" }], "description": "How long an open breaker refuses calls before one probe: 1ms..1h." }
            }
          },
          "db": {
            "type": "object", "additionalProperties": false,
            "properties": { "poolSize": { "type": "integer", "minimum": 1, "maximum": 64 } }
          },
          "rateLimits": { "type": "object", "description": "Requests per second by route template (e.g. /products/{id}); over it the server answers 429. 0 lifts the limit.", "additionalProperties": { "type": "number", "minimum": 0, "maximum": 100000 } },
          "flags": { "type": "object", "description": "Share of users (0..1) a feature flag is on for, by flag name ([a-z0-9-_]{1,64}).", "additionalProperties": { "type": "number", "minimum": 0, "maximum": 1 } }
        }
      },
      "ConfigVersion": {
        "type": "object", "required": ["version", "values"],
        "properties": {
          "version": { "type": "integer", "minimum": 0, "description": "Grows by one with every change of the service's config; 0 means the processes' flags." },
          "values": { "$ref": "#/components/schemas/ConfigValues" }
        }
      },
      "Assignment": {
        "type": "object", "required": ["leaseMs", "faults"],
        "properties": {
          "leaseMs": { "type": "integer", "description": "How long the agent may keep applying this answer without hearing from the controller." },
          "faults": {
            "type": "array", "description": "Faults for this process (config pushes arrive as config instead).",
            "items": {
              "type": "object", "required": ["id", "spec", "remainingMs"],
              "properties": { "id": { "type": "string" }, "spec": { "$ref": "#/components/schemas/FaultSpec" }, "remainingMs": { "type": "integer" } }
            }
          },
          "config": { "$ref": "#/components/schemas/ConfigVersion" },
          "drained": { "type": "array", "items": { "type": "string" }, "description": "Instances (payment-2) every caller leaves out of rotation." },
          "endpoints": {
            "type": "object", "description": "For each scaled service, its instances and where they serve: callers put exactly these in rotation. Services never scaled are absent (callers keep their --peers).",
            "additionalProperties": {
              "type": "array",
              "items": { "type": "object", "required": ["id", "url"], "properties": { "id": { "type": "string" }, "url": { "type": "string" } } }
            }
          }
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
        "type": "object", "required": ["op"], "additionalProperties": false,
        "properties": {
          "op": { "type": "string", "enum": ["rollback","restart","scale","drain","undrain","config-set","flag-set","rate-limit","dlq-replay","dlq-purge","no-action"] },
          "target": { "type": "string", "pattern": "^(gateway|auth|catalog|cache|search|cart|checkout|inventory|payment|payment-provider|shipping|queue|notification|projector)(-[1-9][0-9]{0,8})?(@[A-Za-z0-9._+-]{1,64})?(->(gateway|auth|catalog|cache|search|cart|checkout|inventory|payment|payment-provider|shipping|queue|notification|projector|db|queue-consumer))?$", "description": "catalog, payment-2, gateway->catalog, catalog@2.4.0 (not needed for no-action). config-set, flag-set, rate-limit and scale take a service; drain and undrain an instance; dlq-replay and dlq-purge the queue." },
          "actor": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "\\S", "description": "Who performs it: an instructor may name anyone (default: instructor); a learner token always acts as its learner, and another name is refused." },
          "set": {
            "type": "object", "maxProperties": 16,
            "description": "Only for config-set (config keys: timeouts.<peer>, retries.count, retries.budget, retries.jitter, breaker.failureThreshold, breaker.cooldown, db.poolSize, rateLimits.<route>, flags.<name>), flag-set (flag name -> share of users 0..1), rate-limit (route template -> requests per second, 0 lifts it) and scale (replicas -> instances, 1..8; not the gateway or the queue). Values are JSON or text (\"0.1\", \"500ms\", \"false\").",
            "additionalProperties": { "oneOf": [ { "type": "number" }, { "type": "string" }, { "type": "boolean" } ] }
          },
          "topic": { "type": "string", "pattern": "^[a-z0-9-]{1,64}$", "description": "Only for dlq-replay and dlq-purge; without it, every topic with dead letters." }
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
          "result": { "type": "string", "description": "What the op did, e.g. \"checkout config v4: timeouts.payment=500ms\"." }
        }
      },
      "ExerciseSummary": {
        "type": "object", "required": ["id", "learners", "createdMs"],
        "properties": {
          "id": { "type": "string" },
          "learners": { "type": "array", "items": { "type": "string" } },
          "createdMs": { "type": "integer" },
          "scenario": { "type": "string" },
          "seed": { "type": "integer" },
          "startsMs": { "type": "integer" },
          "startsInMs": { "type": "integer" },
          "ended": { "oneOf": [ { "type": "null" }, { "type": "object" } ] }
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
    "/health": { "get": { "summary": "Liveness", "x-role": "anyone", "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } } } } },
    "/openapi.json": { "get": { "summary": "This document", "x-role": "anyone", "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
    "/metrics": { "get": { "summary": "Controller metrics (OpenMetrics)", "x-role": "anyone", "responses": { "200": { "description": "OK", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } } } } },
    "/v1/agent/faults": {
      "get": {
        "summary": "The faults one process must apply, with a lease",
        "x-role": "agent",
        "security": [ { "agent": [] } ],
        "parameters": [
          { "name": "service", "in": "query", "required": true, "schema": { "type": "string" }, "description": "e.g. catalog" },
          { "name": "instance", "in": "query", "required": true, "schema": { "type": "string" }, "description": "e.g. catalog-2" },
          { "name": "version", "in": "query", "required": false, "schema": { "type": "string" }, "description": "the service.version the process runs; faults aimed at a version reach only processes that report it" },
          { "name": "url", "in": "query", "required": false, "schema": { "type": "string" }, "description": "where the process serves (http://host:port), once it does; callers of a scaled service are sent there" }
        ],
        "responses": { "200": { "description": "Assignment", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Assignment" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/faults": {
      "post": {
        "summary": "Inject a fault",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Inject" } } } },
        "responses": { "201": { "description": "Injected", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/StoredFault" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      },
      "get": {
        "summary": "Faults in force, manual and from the running scenario",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Faults", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ActiveFaults" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "delete": {
        "summary": "Clear every manual fault and stop the running scenario",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Cleared", "content": { "application/json": { "schema": { "type": "object", "required": ["cleared", "stoppedScenario"], "properties": { "cleared": { "type": "integer" }, "stoppedScenario": { "type": ["string", "null"] } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/faults/{id}": {
      "delete": {
        "summary": "Clear one manual fault",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "responses": { "204": { "description": "Cleared" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/scenarios": {
      "get": {
        "summary": "The scenario catalogue",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Scenarios", "content": { "application/json": { "schema": { "type": "object", "required": ["scenarios"], "properties": { "scenarios": { "type": "array", "items": { "type": "object", "required": ["id", "title", "difficulty", "category"], "properties": { "id": { "type": "string" }, "title": { "type": "string" }, "difficulty": { "type": "string" }, "category": { "type": "string" } } } } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/scenarios/{id}": {
      "get": {
        "summary": "One scenario, with its ground truth",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "responses": { "200": { "description": "Scenario", "content": { "application/json": { "schema": { "type": "object", "required": ["id", "title", "page", "steps", "truth", "mitigation"] } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/scenarios/{id}/start": {
      "post": {
        "summary": "Start a scenario; answers the page text",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": { "speed": { "type": "number", "minimum": 1, "maximum": 1000, "description": "Play the timeline this many times faster" } } } } } },
        "responses": { "201": { "description": "Started", "content": { "application/json": { "schema": { "type": "object", "required": ["scenario", "page"], "properties": { "scenario": { "$ref": "#/components/schemas/RunningScenario" }, "page": { "type": "string" } } } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "description": "Another scenario is running, or the scenario deploys and the controller has no process control", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } }
      }
    },
    "/v1/scenario": {
      "get": {
        "summary": "The running scenario and its clock",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Running scenario or null", "content": { "application/json": { "schema": { "type": "object", "required": ["scenario"], "properties": { "scenario": { "oneOf": [ { "type": "null" }, { "$ref": "#/components/schemas/RunningScenario" } ] } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "delete": {
        "summary": "Stop the running scenario",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Stopped", "content": { "application/json": { "schema": { "type": "object", "required": ["stopped"], "properties": { "stopped": { "type": "string" } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/deploys": {
      "post": {
        "summary": "Roll a service (or one instance) to a version: a rolling restart under firedrill up",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Deploy" } } } },
        "responses": { "201": { "description": "Rolling out", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/DeployRecord" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      },
      "get": {
        "summary": "The deploy history and the version each changed instance should run",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Deploys", "content": { "application/json": { "schema": { "type": "object", "required": ["deploys", "versions", "processControl"], "properties": { "deploys": { "type": "array", "items": { "$ref": "#/components/schemas/DeployRecord" } }, "versions": { "type": "object", "additionalProperties": { "type": "object", "additionalProperties": { "type": "string" } } }, "processControl": { "type": "boolean", "description": "false outside firedrill up: deploys cannot act" } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/ops": {
      "post": {
        "summary": "Perform a mitigation op (recorded with time and actor)",
        "x-role": "learner",
        "security": [ { "learner": [] }, { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Op" } } } },
        "responses": { "201": { "description": "Performed", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OpRecord" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" }, "502": { "description": "The service the op calls (the queue) failed", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } }
      },
      "get": {
        "summary": "The ops log: the newest ops, oldest first",
        "x-role": "learner",
        "security": [ { "learner": [] }, { "instructor": [] } ],
        "parameters": [ { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 200 } } ],
        "responses": { "200": { "description": "Ops", "content": { "application/json": { "schema": { "type": "object", "required": ["ops", "total"], "properties": { "ops": { "type": "array", "items": { "$ref": "#/components/schemas/OpRecord" } }, "total": { "type": "integer", "minimum": 0, "description": "every op ever performed" } } } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/learners": {
      "post": {
        "summary": "Add a learner; answers their token, shown only this once",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": { "name": { "type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$" } } } } } },
        "responses": { "201": { "description": "Added", "content": { "application/json": { "schema": { "type": "object", "required": ["name", "token"], "properties": { "name": { "type": "string" }, "token": { "type": "string" } } } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "409": { "$ref": "#/components/responses/Conflict" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      },
      "get": {
        "summary": "The learners",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Learners", "content": { "application/json": { "schema": { "type": "object", "required": ["learners"], "properties": { "learners": { "type": "array", "items": { "type": "string" } } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/learners/{name}": {
      "delete": {
        "summary": "Remove a learner: their token stops working",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "parameters": [ { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "responses": { "204": { "description": "Removed" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/exercises": {
      "post": {
        "summary": "Start an exercise: a scenario (named, or drawn with the seed) after a warm-up learners are not told the length of",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "properties": {
          "scenario": { "type": "string" },
          "difficulty": { "type": "string", "enum": ["beginner", "intermediate", "advanced"] },
          "seed": { "type": "integer", "minimum": 0 },
          "learners": { "type": "array", "maxItems": 64, "items": { "type": "string" } },
          "timeLimit": { "$ref": "#/components/schemas/Duration" },
          "warmup": { "$ref": "#/components/schemas/Duration" },
          "pageAfter": { "$ref": "#/components/schemas/Duration" }
        } } } } },
        "responses": { "201": { "description": "Started", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ExerciseSummary" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      },
      "get": {
        "summary": "Every exercise, running and ended",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Exercises", "content": { "application/json": { "schema": { "type": "object", "required": ["exercises"], "properties": { "exercises": { "type": "array", "items": { "$ref": "#/components/schemas/ExerciseSummary" } } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    },
    "/v1/exercise": {
      "get": {
        "summary": "The exercise the caller takes part in (running, else the latest ended): the page once sent, elapsed time, hints taken, actions. Names no scenario.",
        "x-role": "learner",
        "security": [ { "learner": [] }, { "instructor": [] } ],
        "responses": { "200": { "description": "Status", "content": { "application/json": { "schema": { "type": "object", "required": ["id", "phase", "learners", "elapsedMs", "hints", "actions"] } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      },
      "delete": {
        "summary": "Stop the running exercise (the lab is reset, the report written)",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Stopped", "content": { "application/json": { "schema": { "type": "object", "required": ["stopped"], "properties": { "stopped": { "type": "string" } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" } }
      }
    },
    "/v1/exercise/actions": {
      "post": {
        "summary": "A learner's action in the running exercise, recorded with time and name",
        "x-role": "learner",
        "security": [ { "learner": [] }, { "instructor": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["action"], "properties": {
          "action": { "type": "string", "enum": ["ack", "hint", "status", "declare", "diagnose", "resolve", "give-up"] },
          "text": { "type": "string", "maxLength": 2000, "description": "status and declare" },
          "service": { "type": "string", "description": "diagnose: the root cause's service (or db, or none)" },
          "instance": { "type": "string", "description": "diagnose: one instance, e.g. payment-2" },
          "category": { "type": "string", "enum": ["bad-deploy","config-change","dependency-latency","dependency-failure","resource-exhaustion","network","time","data","load","telemetry","none"] },
          "chain": { "type": "array", "maxItems": 16, "items": { "type": "string" } },
          "summary": { "type": "string", "maxLength": 2000 }
        } } } } },
        "responses": { "201": { "description": "Recorded", "content": { "application/json": { "schema": { "type": "object", "required": ["entry", "said"], "properties": { "entry": { "type": "object" }, "said": { "type": "string", "description": "a hint's text, or what happened" } } } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "409": { "$ref": "#/components/responses/Conflict" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      }
    },
    "/v1/exercises/{id}/report": {
      "get": {
        "summary": "The debrief report: a learner reads those of exercises they took part in, once ended",
        "x-role": "learner",
        "security": [ { "learner": [] }, { "instructor": [] } ],
        "parameters": [
          { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
          { "name": "format", "in": "query", "required": false, "schema": { "type": "string", "enum": ["json", "md", "html"], "default": "json" } }
        ],
        "responses": { "200": { "description": "The report", "content": { "application/json": { "schema": { "type": "object" } }, "text/markdown": { "schema": { "type": "string" } }, "text/html": { "schema": { "type": "string" } } } }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" } }
      }
    },
    "/api/v2/alerts": {
      "post": {
        "summary": "Alerts, as Prometheus posts them to an Alertmanager: a paging alert sends the running exercise's page",
        "x-role": "alerts",
        "security": [ { "alerts": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "array", "items": { "type": "object", "required": ["labels"], "properties": { "labels": { "type": "object", "additionalProperties": { "type": "string" } }, "annotations": { "type": "object" }, "startsAt": { "type": "string" }, "endsAt": { "type": "string" }, "generatorURL": { "type": "string" } } } } } } },
        "responses": { "200": { "description": "Taken" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      }
    },
    "/v1/alerts": {
      "post": {
        "summary": "Alertmanager's webhook: the same as /api/v2/alerts, by way of an Alertmanager",
        "x-role": "alerts",
        "security": [ { "alerts": [] } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["alerts"], "properties": { "alerts": { "type": "array", "items": { "type": "object", "required": ["status", "labels"], "properties": { "status": { "type": "string", "enum": ["firing", "resolved"] }, "labels": { "type": "object", "additionalProperties": { "type": "string" } } } } } } } } } },
        "responses": { "200": { "description": "Taken" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "413": { "$ref": "#/components/responses/TooLarge" }, "415": { "$ref": "#/components/responses/NotJson" } }
      }
    },
    "/v1/lab/reset": {
      "post": {
        "summary": "Undo every change since the lab started (scenario, faults, deploys, config, flags, rate limits, drains, scale, restart backoffs); answers what was undone at once",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "202": { "description": "Undone; the processes follow (GET tells when they have)", "content": { "application/json": { "schema": { "type": "object", "required": ["undone", "generation"], "properties": { "undone": { "type": "array", "items": { "type": "string" } }, "generation": { "type": "integer", "minimum": 1 } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      },
      "get": {
        "summary": "Whether the lab is back in its starting state since the latest reset",
        "x-role": "instructor",
        "security": [ { "instructor": [] } ],
        "responses": { "200": { "description": "Status", "content": { "application/json": { "schema": { "type": "object", "required": ["generation", "settled", "pending"], "properties": { "generation": { "type": "integer", "minimum": 0 }, "settled": { "type": "boolean" }, "pending": { "type": "array", "items": { "type": "string" } } } } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } }
      }
    }
  }
}"##;

#[cfg(test)]
mod tests {
    use firedrill_runtime::faults::model::{FaultKind, SERVICES};
    use serde_json::Value;

    use crate::model::op::Verb;

    fn doc() -> Value {
        serde_json::from_str(super::DOCUMENT).unwrap()
    }

    /// Every operation of the document, as (path, method, role).
    pub(crate) fn operations() -> Vec<(String, String, String)> {
        let doc = doc();
        let mut found = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let role = op["x-role"].as_str().unwrap_or("").to_string();
                found.push((path.clone(), method.clone(), role));
            }
        }
        found
    }

    #[test]
    fn every_route_is_described_with_its_role() {
        let ops = operations();
        assert_eq!(ops.len(), 30, "{ops:?}");
        for (path, method, role) in &ops {
            assert!(
                ["anyone", "instructor", "learner", "agent", "alerts"].contains(&role.as_str()),
                "{method} {path} states no role"
            );
            let security = &doc()["paths"][path][method]["security"];
            assert_eq!(
                role == "anyone",
                security.is_null(),
                "{method} {path}: x-role and security disagree"
            );
        }
    }

    /// Every `$ref` points at something the document defines.
    #[test]
    fn the_document_parses_and_its_references_resolve() {
        let doc = doc();
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        out.push(r.clone());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    fn strings(value: &Value) -> Vec<String> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// The document's lists of verbs, fault kinds and services are the
    /// code's: an op, kind or service added to one and not the other fails
    /// here.
    #[test]
    fn the_enums_are_the_codes() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let verbs: Vec<String> = Verb::ALL.iter().map(Verb::to_string).collect();
        assert_eq!(strings(&schemas["Op"]["properties"]["op"]["enum"]), verbs);

        // serde names every kind it knows when it meets one it does not.
        let err = serde_json::from_value::<FaultKind>(serde_json::json!({"kind": "?"}))
            .unwrap_err()
            .to_string();
        let known: Vec<String> = err
            .split("expected one of")
            .nth(1)
            .unwrap()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect();
        let mut documented = strings(&schemas["FaultSpec"]["properties"]["kind"]["enum"]);
        let mut known_sorted = known.clone();
        documented.sort();
        known_sorted.sort();
        assert_eq!(documented, known_sorted);

        // Every parameter of the kinds' table is a FaultSpec property.
        let properties = schemas["FaultSpec"]["properties"].as_object().unwrap();
        for kind in firedrill_runtime::faults::params::KINDS {
            for param in kind.params.iter().filter(|p| !p.name.contains(',')) {
                assert!(
                    properties.contains_key(param.name),
                    "{}'s {} is not described",
                    kind.name,
                    param.name
                );
            }
        }

        let mut services: Vec<String> = SERVICES.iter().map(|s| s.to_string()).collect();
        services.push("loadgen".into());
        assert_eq!(
            strings(&schemas["Target"]["properties"]["service"]["enum"]),
            services
        );
    }
}
