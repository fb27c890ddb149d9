/// The OpenAPI 3.0 description of the REST API, served at `/openapi.json`.
///
/// Hand-written (generated once from a small script and kept beside the
/// routes) so clients and people have one accurate reference of the contract.
/// Shared pieces live under `components` (schemas, error responses, the
/// `{name}` path parameter); bearer auth is document-wide, and the public
/// endpoints opt out with `"security": []`. Edit it together with `API.swift`.
enum OpenAPI {
    static let document = #"""
{
 "openapi": "3.0.3",
 "info": {
  "title": "Weir control plane",
  "version": "1",
  "description": "Jobs, drafts, immutable versions, runs (supervised `weir run` processes), snapshots and the asynchronous operation log of a Weir server. Errors: HTTP status + {\"error\": {\"code\", \"message\", \"suggestion\"}}. With --token-file every /api call needs Authorization: Bearer <token>."
 },
 "servers": [
  {
   "url": "http://127.0.0.1:8080"
  }
 ],
 "security": [
  {
   "bearerAuth": []
  },
  {}
 ],
 "paths": {
  "/api/v1/jobs": {
   "get": {
    "summary": "List jobs",
    "operationId": "listJobs",
    "responses": {
     "200": {
      "description": "The jobs",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Job"
         }
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   },
   "post": {
    "summary": "Create a job",
    "operationId": "createJob",
    "responses": {
     "201": {
      "description": "Created",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Job"
        }
       }
      }
     },
     "409": {
      "description": "A job of that name exists.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "description": "Invalid name or body.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/CreateJob"
       }
      }
     }
    }
   }
  },
  "/api/v1/jobs/{name}": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "Get a job",
    "operationId": "getJob",
    "responses": {
     "200": {
      "description": "The job",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Job"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   },
   "delete": {
    "summary": "Delete a job and its home directory",
    "operationId": "deleteJob",
    "responses": {
     "204": {
      "description": "Deleted"
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "409": {
      "description": "The job is running or operating.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/jobs/{name}/draft": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "Get the draft",
    "operationId": "getDraft",
    "responses": {
     "200": {
      "description": "The draft",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Draft"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   },
   "put": {
    "summary": "Replace the draft (never affects a running run)",
    "operationId": "putDraft",
    "responses": {
     "200": {
      "description": "The draft",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Draft"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "422": {
      "$ref": "#/components/responses/InvalidBody"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/PutDraft"
       }
      }
     }
    }
   }
  },
  "/api/v1/jobs/{name}/versions": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "List versions, newest first",
    "operationId": "listVersions",
    "responses": {
     "200": {
      "description": "Versions",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Version"
         }
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   },
   "post": {
    "summary": "Publish the draft as a new version (optionally publish and run)",
    "operationId": "publish",
    "responses": {
     "201": {
      "description": "Published",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/PublishResult"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "409": {
      "description": "run requested while an operation is in progress, or the job is running without stopCurrent.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "description": "Missing description (invalid_request) or the draft does not validate (invalid_spec, located errors in the message).",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Publish"
       }
      }
     }
    }
   }
  },
  "/api/v1/jobs/{name}/run": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "post": {
    "summary": "Run a version (asynchronous)",
    "operationId": "runJob",
    "responses": {
     "202": {
      "description": "Accepted",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Operation"
        }
       }
      }
     },
     "404": {
      "description": "No such job, version or snapshot.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "409": {
      "description": "Running or operating (stop the running version first), no versions, or no snapshots to restore.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "422": {
      "$ref": "#/components/responses/InvalidBody"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Run"
       }
      }
     }
    }
   }
  },
  "/api/v1/jobs/{name}/stop": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "post": {
    "summary": "Stop the live run (asynchronous)",
    "operationId": "stopJob",
    "responses": {
     "202": {
      "description": "Accepted",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Operation"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "409": {
      "$ref": "#/components/responses/NotRunningOrBusy"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Stop"
       }
      }
     }
    }
   }
  },
  "/api/v1/jobs/{name}/savepoint": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "post": {
    "summary": "Take a savepoint of the live run (asynchronous)",
    "operationId": "savepoint",
    "responses": {
     "202": {
      "description": "Accepted",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Operation"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "409": {
      "$ref": "#/components/responses/NotRunningOrBusy"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "type": "object"
       }
      }
     }
    }
   }
  },
  "/api/v1/jobs/{name}/snapshots": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "List the job's snapshots that still exist, newest first",
    "operationId": "listSnapshots",
    "responses": {
     "200": {
      "description": "Snapshots",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Snapshot"
         }
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/jobs/{name}/operations": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "The job's operation log, newest first",
    "operationId": "listOperations",
    "responses": {
     "200": {
      "description": "Operations",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/Operation"
         }
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/operations/{id}": {
   "get": {
    "summary": "Get an operation",
    "operationId": "getOperation",
    "responses": {
     "200": {
      "description": "The operation",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Operation"
        }
       }
      }
     },
     "404": {
      "description": "No such operation.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "schema": {
       "type": "string"
      }
     }
    ]
   }
  },
  "/api/v1/jobs/{name}/logs": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "A run's log (stdout+stderr) from a byte offset; follow by polling with X-Next-Offset",
    "operationId": "getLogs",
    "responses": {
     "200": {
      "description": "Log text (passwords masked)",
      "headers": {
       "X-Next-Offset": {
        "schema": {
         "type": "integer"
        },
        "description": "Offset to ask for next."
       },
       "X-Run-Id": {
        "schema": {
         "type": "string"
        }
       }
      },
      "content": {
       "text/plain": {
        "schema": {
         "type": "string"
        }
       }
      }
     },
     "404": {
      "description": "No such job or run, or the job has not run yet.",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    },
    "parameters": [
     {
      "name": "run",
      "in": "query",
      "required": false,
      "schema": {
       "type": "string"
      },
      "description": "Default: the live run, else the last run."
     },
     {
      "name": "offset",
      "in": "query",
      "required": false,
      "schema": {
       "type": "integer",
       "minimum": 0,
       "default": 0
      }
     }
    ]
   }
  },
  "/metrics": {
   "get": {
    "summary": "Prometheus metrics",
    "operationId": "metrics",
    "security": [],
    "description": "weir_jobs{status}, weir_operations_total{type,status}, and per live run: weir_records_in_total, weir_records_out_total, weir_partition_lag{partition}, weir_checkpoint_duration_ms, weir_checkpoint_size_bytes, weir_restarts_total, weir_decode_errors_total, weir_late_records_total, weir_checkpoints_total (all with a job label).",
    "responses": {
     "200": {
      "description": "Text exposition format 0.0.4",
      "content": {
       "text/plain": {
        "schema": {
         "type": "string"
        }
       }
      }
     }
    }
   }
  },
  "/": {
   "get": {
    "summary": "The web console (an HTML page that uses this API)",
    "operationId": "console",
    "security": [],
    "responses": {
     "200": {
      "description": "the console page",
      "content": {
       "text/html": {
        "schema": {
         "type": "string"
        }
       }
      }
     }
    }
   }
  },
  "/healthz": {
   "get": {
    "summary": "Liveness",
    "operationId": "healthz",
    "security": [],
    "responses": {
     "200": {
      "description": "ok",
      "content": {
       "text/plain": {
        "schema": {
         "type": "string"
        }
       }
      }
     }
    }
   }
  },
  "/openapi.json": {
   "get": {
    "summary": "This document",
    "operationId": "openapi",
    "security": [],
    "responses": {
     "200": {
      "description": "OpenAPI 3.0",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     }
    }
   }
  },
  "/api/v1/jobs/{name}/diff": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "Where each node's state goes when a snapshot of version `from` is restored by version `to`",
    "operationId": "diffVersions",
    "parameters": [
     {
      "name": "from",
      "in": "query",
      "required": false,
      "description": "A version, or `latest` (the default).",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "to",
      "in": "query",
      "required": true,
      "description": "A version, or `draft`: what publishing the draft would do.",
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The mapping",
      "content": {
       "application/json": {
        "schema": {
         "type": "object",
         "required": [
          "from",
          "to",
          "mapping"
         ],
         "properties": {
          "from": {
           "type": "integer"
          },
          "to": {
           "oneOf": [
            {
             "type": "integer"
            },
            {
             "type": "string",
             "enum": [
              "draft"
             ]
            }
           ]
          },
          "mapping": {
           "$ref": "#/components/schemas/StateMapping"
          }
         }
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/jobs/{name}/snapshots/{id}/diff": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    },
    {
     "name": "id",
     "in": "path",
     "required": true,
     "description": "A snapshot id (chk-17, sav-18, stop-19) or `latest`.",
     "schema": {
      "type": "string"
     }
    }
   ],
   "get": {
    "summary": "Preview a restore of the snapshot into a version: per topic-partition the snapshot's offset against the broker's range now, and per node where its state goes",
    "operationId": "previewRestore",
    "parameters": [
     {
      "name": "version",
      "in": "query",
      "required": false,
      "description": "The published version to restore into (default: the latest).",
      "schema": {
       "type": "integer",
       "minimum": 1
      }
     },
     {
      "name": "allowNonRestoredState",
      "in": "query",
      "required": false,
      "schema": {
       "type": "boolean"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The preview; `problems` lists why the restore would be refused (empty: it would go on)",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RestorePreview"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/jobs/{name}/snapshots/{id}/verify": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    },
    {
     "name": "id",
     "in": "path",
     "required": true,
     "description": "A snapshot id (chk-17, sav-18, stop-19) or `latest`.",
     "schema": {
      "type": "string"
     }
    }
   ],
   "get": {
    "summary": "Dry-run a restore of the snapshot: checksums, all state decoded, mapping, offsets against the broker, in-doubt sink transactions",
    "operationId": "verifySnapshot",
    "parameters": [
     {
      "name": "version",
      "in": "query",
      "required": false,
      "description": "The published version to restore into (default: the latest).",
      "schema": {
       "type": "integer",
       "minimum": 1
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The report; `passed` is the outcome",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/RestoreVerification"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/jobs/{name}/transactions": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "The job's prepared sink transactions (XA RECOVER) with what its next run or restore does with each",
    "operationId": "listTransactions",
    "responses": {
     "200": {
      "description": "The ledger",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/TransactionLedger"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/jobs/{name}/drill": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "post": {
    "summary": "Rehearse a restore (asynchronous): a running job is stopped with a snapshot and drilled from it; a stopped one from a stored snapshot. The restored run catches up to the broker's current offsets, a shadow run replays the job from its start into a shadow database up to the same offsets, and every sink table is compared with its shadow row by row. The report is the operation's result; differences fail it (code drill_failed).",
    "operationId": "drill",
    "requestBody": {
     "required": true,
     "content": {
      "application/json": {
       "schema": {
        "$ref": "#/components/schemas/Drill"
       }
      }
     }
    },
    "responses": {
     "202": {
      "description": "Accepted",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Operation"
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "409": {
      "$ref": "#/components/responses/NotRunningOrBusy"
     },
     "422": {
      "description": "Invalid request",
      "content": {
       "application/json": {
        "schema": {
         "$ref": "#/components/schemas/Error"
        }
       }
      }
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/api/v1/jobs/{name}/runs": {
   "parameters": [
    {
     "$ref": "#/components/parameters/JobName"
    }
   ],
   "get": {
    "summary": "The job's run history, newest first: version, how each run ended, the snapshot it restored and its time to restore (predicted and measured)",
    "operationId": "listRuns",
    "responses": {
     "200": {
      "description": "The runs",
      "content": {
       "application/json": {
        "schema": {
         "type": "array",
         "items": {
          "$ref": "#/components/schemas/RunHistoryEntry"
         }
        }
       }
      }
     },
     "404": {
      "$ref": "#/components/responses/NoSuchJob"
     },
     "401": {
      "$ref": "#/components/responses/Unauthorized"
     },
     "500": {
      "$ref": "#/components/responses/InternalError"
     }
    }
   }
  },
  "/favicon.ico": {
   "get": {
    "summary": "The console's icon (SVG)",
    "operationId": "favicon",
    "security": [],
    "responses": {
     "200": {
      "description": "The icon",
      "content": {
       "image/svg+xml": {
        "schema": {
         "type": "string"
        }
       }
      }
     }
    }
   }
  }
 },
 "components": {
  "schemas": {
   "Error": {
    "type": "object",
    "required": [
     "error"
    ],
    "properties": {
     "error": {
      "type": "object",
      "required": [
       "code",
       "message",
       "suggestion"
      ],
      "properties": {
       "code": {
        "type": "string",
        "description": "not_found, conflict, invalid_spec, invalid_request, unauthorized, internal, or an engine error code (broker_unreachable, topic_missing, mysql_unreachable, access_denied, table_missing, column_mismatch, lock_wait_timeout, io_error, …)."
       },
       "message": {
        "type": "string"
       },
       "suggestion": {
        "type": "string",
        "nullable": true
       }
      }
     }
    }
   },
   "Warning": {
    "type": "object",
    "required": [
     "message",
     "suggestion"
    ],
    "properties": {
     "code": {
      "type": "string",
      "nullable": true,
      "description": "The engine's error code (topic_deleted, sink_schema_changed, lock_wait_timeout, …); the suggestion is chosen by it."
     },
     "message": {
      "type": "string"
     },
     "suggestion": {
      "type": "string",
      "nullable": true
     }
    },
    "description": "The last failure of the job (failed operation, or a run that ended by itself), with a suggested fix. Cleared by the next successful run, stop or savepoint."
   },
   "LiveRun": {
    "type": "object",
    "required": [
     "id",
     "version",
     "pid",
     "startedAt",
     "restoredFrom"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "version": {
      "type": "integer"
     },
     "pid": {
      "type": "integer"
     },
     "startedAt": {
      "type": "string",
      "format": "date-time"
     },
     "restoredFrom": {
      "type": "string",
      "description": "Snapshot id the run restored from.",
      "nullable": true
     }
    }
   },
   "Job": {
    "type": "object",
    "required": [
     "name",
     "status",
     "version",
     "latestVersion",
     "run",
     "warning",
     "createdAt",
     "updatedAt"
    ],
    "properties": {
     "name": {
      "type": "string"
     },
     "status": {
      "type": "string",
      "enum": [
       "stopped",
       "operating",
       "running"
      ],
      "description": "operating: a run, stop or publish-and-run is in progress (until the run is really up or really down)."
     },
     "version": {
      "type": "integer",
      "description": "Version of the live run, else of the last run.",
      "nullable": true
     },
     "latestVersion": {
      "type": "integer",
      "nullable": true
     },
     "run": {
      "$ref": "#/components/schemas/LiveRun",
      "nullable": true
     },
     "warning": {
      "$ref": "#/components/schemas/Warning",
      "nullable": true
     },
     "createdAt": {
      "type": "string",
      "format": "date-time"
     },
     "updatedAt": {
      "type": "string",
      "format": "date-time"
     }
    }
   },
   "Draft": {
    "type": "object",
    "required": [
     "spec",
     "updatedAt"
    ],
    "properties": {
     "spec": {
      "type": "string",
      "description": "YAML or JSON job spec; passwords in URLs are shown as ***."
     },
     "updatedAt": {
      "type": "string",
      "format": "date-time"
     }
    }
   },
   "Version": {
    "type": "object",
    "required": [
     "version",
     "description",
     "createdAt",
     "spec"
    ],
    "properties": {
     "version": {
      "type": "integer",
      "minimum": 1
     },
     "description": {
      "type": "string"
     },
     "createdAt": {
      "type": "string",
      "format": "date-time"
     },
     "spec": {
      "type": "string",
      "description": "The published spec (immutable); passwords shown as ***."
     }
    }
   },
   "Snapshot": {
    "type": "object",
    "required": [
     "id",
     "kind",
     "version",
     "run",
     "createdAt",
     "sizeBytes",
     "offsets"
    ],
    "properties": {
     "id": {
      "type": "string",
      "example": "stop-14"
     },
     "kind": {
      "type": "string",
      "enum": [
       "checkpoint",
       "savepoint",
       "stop"
      ]
     },
     "version": {
      "type": "integer",
      "nullable": true
     },
     "run": {
      "type": "string",
      "nullable": true
     },
     "createdAt": {
      "type": "string",
      "format": "date-time"
     },
     "sizeBytes": {
      "type": "integer"
     },
     "offsets": {
      "type": "object",
      "description": "source node id → {\"topic/partition\": next offset}",
      "additionalProperties": {
       "type": "object",
       "additionalProperties": {
        "type": "integer"
       }
      }
     }
    }
   },
   "Operation": {
    "type": "object",
    "required": [
     "id",
     "job",
     "type",
     "status",
     "requestedAt",
     "finishedAt",
     "result",
     "error"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "job": {
      "type": "string"
     },
     "type": {
      "type": "string",
      "enum": [
       "publish",
       "run",
       "stop",
       "savepoint",
       "publish_and_run",
       "drill"
      ]
     },
     "status": {
      "type": "string",
      "enum": [
       "pending",
       "running",
       "succeeded",
       "failed"
      ]
     },
     "requestedAt": {
      "type": "string",
      "format": "date-time"
     },
     "finishedAt": {
      "type": "string",
      "format": "date-time",
      "nullable": true
     },
     "result": {
      "type": "object",
      "additionalProperties": true,
      "description": "publish: {version}; run: {run, version, restoredFrom?}; stop: {run, snapshot?}; savepoint: {snapshot, run}; publish_and_run: {version, stoppedRun?, snapshot?, run, restoredFrom?}; drill: {version, snapshot, stoppedRun?, passed, report} (report: the drill's report as `weir drill --json` prints it)",
      "nullable": true
     },
     "error": {
      "type": "object",
      "required": [
       "code",
       "message",
       "suggestion"
      ],
      "properties": {
       "code": {
        "type": "string"
       },
       "message": {
        "type": "string"
       },
       "suggestion": {
        "type": "string",
        "nullable": true
       }
      },
      "nullable": true
     },
     "restorePreview": {
      "allOf": [
       {
        "$ref": "#/components/schemas/RestorePreview"
       }
      ],
      "description": "Only in the answer to a run request with a snapshot: what the restore will do (offsets against the broker, state per node)."
     }
    }
   },
   "CreateJob": {
    "type": "object",
    "required": [
     "name",
     "spec"
    ],
    "properties": {
     "name": {
      "type": "string",
      "pattern": "^[A-Za-z0-9._-]+$"
     },
     "spec": {
      "type": "string",
      "description": "The initial draft (stored as given, validated at publish)."
     }
    }
   },
   "PutDraft": {
    "type": "object",
    "required": [
     "spec"
    ],
    "properties": {
     "spec": {
      "type": "string",
      "description": "A password sent back as *** keeps the stored one."
     }
    }
   },
   "Publish": {
    "type": "object",
    "required": [
     "description"
    ],
    "properties": {
     "description": {
      "type": "string",
      "minLength": 1
     },
     "run": {
      "type": "object",
      "description": "Publish and run: stop the current run (with a stop snapshot if snapshot=true), then run the new version, restoring from that stop snapshot if restoreFromStop=true.",
      "properties": {
       "stopCurrent": {
        "type": "boolean",
        "default": false
       },
       "snapshot": {
        "type": "boolean",
        "default": false
       },
       "restoreFromStop": {
        "type": "boolean",
        "default": false
       },
       "allowNonRestoredState": {
        "type": "boolean",
        "default": false,
        "description": "Extension: drop the state of nodes the new version lacks when restoring."
       }
      },
      "nullable": true
     }
    }
   },
   "PublishResult": {
    "type": "object",
    "required": [
     "version",
     "operation"
    ],
    "properties": {
     "version": {
      "$ref": "#/components/schemas/Version"
     },
     "operation": {
      "$ref": "#/components/schemas/Operation",
      "description": "The publish_and_run operation; null for a plain publish.",
      "nullable": true
     },
     "stateMapping": {
      "allOf": [
       {
        "$ref": "#/components/schemas/StateMapping"
       }
      ],
      "nullable": true,
      "description": "Where the state of the previous version goes in this one (null for the first version)."
     }
    }
   },
   "Run": {
    "type": "object",
    "properties": {
     "version": {
      "type": "integer",
      "description": "Default: the latest version.",
      "nullable": true
     },
     "snapshot": {
      "type": "string",
      "description": "A snapshot id of this job, or \"latest\".",
      "nullable": true
     },
     "allowNonRestoredState": {
      "type": "boolean",
      "default": false
     }
    }
   },
   "Stop": {
    "type": "object",
    "properties": {
     "snapshot": {
      "type": "boolean",
      "default": false,
      "description": "true: stop with a snapshot (SIGTERM); false: cancel, output stays committed up to the last completed checkpoint."
     }
    }
   },
   "StateMapping": {
    "type": "object",
    "required": [
     "nodes"
    ],
    "properties": {
     "nodes": {
      "type": "array",
      "items": {
       "type": "object",
       "required": [
        "node",
        "outcome"
       ],
       "properties": {
        "node": {
         "type": "string"
        },
        "outcome": {
         "type": "string",
         "enum": [
          "restored",
          "new",
          "dropped",
          "incompatible"
         ]
        },
        "reason": {
         "type": "string"
        },
        "was": {
         "type": "string"
        },
        "now": {
         "type": "string"
        }
       }
      }
     },
     "maxParallelismChange": {
      "type": "object",
      "properties": {
       "from": {
        "type": "integer"
       },
       "to": {
        "type": "integer"
       }
      }
     }
    },
    "description": "Per node id: restored, new (starts empty), dropped (needs allowNonRestoredState) or incompatible (refused, with both state layouts); a maxParallelism change under keyed state is refused."
   },
   "OffsetRow": {
    "type": "object",
    "required": [
     "node",
     "split",
     "lost",
     "action"
    ],
    "properties": {
     "node": {
      "type": "string"
     },
     "split": {
      "type": "string",
      "description": "topic/partition"
     },
     "snapshotOffset": {
      "type": "integer"
     },
     "low": {
      "type": "integer"
     },
     "high": {
      "type": "integer"
     },
     "startsAt": {
      "type": "integer"
     },
     "replay": {
      "type": "integer"
     },
     "lost": {
      "type": "integer"
     },
     "action": {
      "type": "string",
      "enum": [
       "resume",
       "new_partition",
       "new_topic",
       "dropped",
       "retention_loss",
       "past_end"
      ]
     }
    }
   },
   "RestorePreview": {
    "type": "object",
    "required": [
     "snapshot",
     "checkpointID",
     "run",
     "mapping",
     "offsets",
     "problems"
    ],
    "properties": {
     "snapshot": {
      "type": "string"
     },
     "checkpointID": {
      "type": "integer"
     },
     "run": {
      "type": "string"
     },
     "mapping": {
      "$ref": "#/components/schemas/StateMapping"
     },
     "offsets": {
      "type": "object",
      "required": [
       "rows"
      ],
      "properties": {
       "rows": {
        "type": "array",
        "items": {
         "$ref": "#/components/schemas/OffsetRow"
        }
       }
      }
     },
     "problems": {
      "type": "array",
      "items": {
       "type": "string"
      }
     }
    }
   },
   "LedgerEntry": {
    "type": "object",
    "required": [
     "id",
     "node",
     "run",
     "subtask",
     "epoch",
     "decision",
     "runKnown"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "node": {
      "type": "string"
     },
     "run": {
      "type": "string"
     },
     "subtask": {
      "type": "integer"
     },
     "epoch": {
      "type": "integer"
     },
     "decision": {
      "type": "string",
      "enum": [
       "commit",
       "roll back"
      ]
     },
     "snapshot": {
      "type": "string",
      "description": "The snapshot whose checkpoint covers the epoch."
     },
     "runKnown": {
      "type": "boolean",
      "description": "False: the state directory has no snapshot of this run."
     }
    }
   },
   "TransactionLedger": {
    "type": "object",
    "required": [
     "entries"
    ],
    "properties": {
     "entries": {
      "type": "array",
      "items": {
       "$ref": "#/components/schemas/LedgerEntry"
      }
     }
    }
   },
   "RestoreVerification": {
    "type": "object",
    "required": [
     "passed",
     "problems"
    ],
    "properties": {
     "passed": {
      "type": "boolean"
     },
     "problems": {
      "type": "array",
      "items": {
       "type": "string"
      }
     },
     "preview": {
      "$ref": "#/components/schemas/RestorePreview"
     },
     "state": {
      "type": "array",
      "items": {
       "type": "object",
       "properties": {
        "node": {
         "type": "string"
        },
        "files": {
         "type": "integer"
        },
        "bytes": {
         "type": "integer"
        },
        "decodeMillis": {
         "type": "number"
        },
        "error": {
         "type": "string"
        }
       }
      }
     },
     "transactions": {
      "$ref": "#/components/schemas/TransactionLedger"
     },
     "decodeBytesPerSecond": {
      "type": "number"
     }
    }
   },
   "Drill": {
    "type": "object",
    "additionalProperties": false,
    "properties": {
     "version": {
      "type": "integer",
      "minimum": 1,
      "nullable": true,
      "description": "The version to restore into (default: the running version, else the latest)."
     },
     "snapshot": {
      "type": "string",
      "nullable": true,
      "description": "A stopped job's snapshot to drill from: an id or `latest` (default). Refused for a running job, which is drilled from its stop snapshot."
     },
     "shadowDatabase": {
      "type": "string",
      "nullable": true,
      "pattern": "^[A-Za-z0-9_]{1,64}$",
      "description": "The database of the shadow tables (default: the sink's database + `_shadow`)."
     }
    }
   },
   "RunHistoryEntry": {
    "type": "object",
    "required": [
     "id",
     "version",
     "status",
     "startedAt",
     "endedAt",
     "restoredFrom",
     "outcome",
     "outcomeMessage",
     "timeToRestore"
    ],
    "properties": {
     "id": {
      "type": "string"
     },
     "version": {
      "type": "integer"
     },
     "status": {
      "type": "string",
      "enum": [
       "starting",
       "running",
       "stopping",
       "ended"
      ]
     },
     "startedAt": {
      "type": "string",
      "format": "date-time"
     },
     "endedAt": {
      "type": "string",
      "format": "date-time",
      "nullable": true
     },
     "restoredFrom": {
      "type": "string",
      "nullable": true
     },
     "outcome": {
      "type": "string",
      "nullable": true,
      "description": "finished, stopped, cancelled, failed, killed, exited or lost"
     },
     "outcomeMessage": {
      "type": "string",
      "nullable": true
     },
     "timeToRestore": {
      "type": "object",
      "nullable": true,
      "description": "A restoring run's time to restore, in milliseconds after the run began: predicted from the snapshot (state size, decode rate) and measured.",
      "properties": {
       "predicted": {
        "type": "object",
        "properties": {
         "stateBytes": {
          "type": "integer"
         },
         "stateLoadedMs": {
          "type": "number"
         },
         "firstRecordMs": {
          "type": "number"
         }
        }
       },
       "measured": {
        "type": "object",
        "properties": {
         "stateLoadedMs": {
          "type": "number",
          "nullable": true
         },
         "sourcesPositionedMs": {
          "type": "number",
          "nullable": true
         },
         "firstRecordMs": {
          "type": "number",
          "nullable": true
         }
        }
       }
      }
     }
    }
   }
  },
  "parameters": {
   "JobName": {
    "name": "name",
    "in": "path",
    "required": true,
    "schema": {
     "type": "string",
     "pattern": "^[A-Za-z0-9._-]+$"
    },
    "description": "The job's name."
   }
  },
  "securitySchemes": {
   "bearerAuth": {
    "type": "http",
    "scheme": "bearer"
   }
  },
  "responses": {
   "Unauthorized": {
    "description": "A token is required (server started with --token-file) and was missing or wrong.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "InternalError": {
    "description": "Internal error.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "NoSuchJob": {
    "description": "No such job.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "InvalidBody": {
    "description": "Invalid body.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "NotRunningOrBusy": {
    "description": "Not running, or an operation is in progress.",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   }
  }
 }
}
"""#
}
