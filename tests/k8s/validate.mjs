// SPDX-License-Identifier: GPL-2.0-or-later
// Validate Kubernetes manifests against the API schema, as `kubectl apply --validate=strict`
// would on a cluster, with no cluster:
// - kubernetes-models: each object against the JSON schema generated from Kubernetes'
//   OpenAPI document (required fields, types, enums such as mountPropagation, formats);
// - @kubernetes/client-node (the official client): every field name is one the API
//   defines for that type (the OpenAPI schemas allow unknown fields, the API server's
//   strict field validation does not).
// Usage: node validate.mjs FILE.yaml...; one line per object; exit status 1 on any error.
import { readFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

// "apps/v1" + "DaemonSet" -> the client's class name "V1DaemonSet" and the model's module.
function names(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  return {
    cls: version.charAt(0).toUpperCase() + version.slice(1) + kind,
    module: `kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`,
  };
}

// Unknown fields, by the client's type of each object.
function strict(value, type, path, errors) {
  if (value === null || value === undefined) return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (!Array.isArray(value)) errors.push(`${path}: must be a list (${type})`);
    else value.forEach((v, i) => strict(v, m[1], `${path}[${i}]`, errors));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (typeof value !== "object" || Array.isArray(value)) errors.push(`${path}: must be a map`);
    else for (const [k, v] of Object.entries(value)) strict(v, m[1], `${path}.${k}`, errors);
    return;
  }
  const cls = k8s[type];
  if (!cls || typeof cls.getAttributeTypeMap !== "function") return; // a scalar: the schema's
  if (typeof value !== "object" || Array.isArray(value)) {
    errors.push(`${path}: must be an object (${type})`);
    return;
  }
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!attrs.has(k)) errors.push(`${path}.${k}: unknown field of ${type}`);
    else strict(v, attrs.get(k), `${path}.${k}`, errors);
  }
}

async function validate(obj) {
  const errors = [];
  if (!obj || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string")
    return ["not a Kubernetes object (no apiVersion and kind)"];
  const n = names(obj.apiVersion, obj.kind);
  let Model;
  try {
    Model = (await import(n.module))[obj.kind];
  } catch {
    return [`${obj.apiVersion} ${obj.kind}: not a kind of the Kubernetes API`];
  }
  if (typeof k8s[n.cls]?.getAttributeTypeMap !== "function")
    return [`${obj.apiVersion} ${obj.kind}: unknown to the client's schema`];
  try {
    new Model(obj).validate();
  } catch (e) {
    for (const d of e.errors ?? [{ instancePath: "", message: e.message }])
      errors.push(`${d.instancePath || "/"}: ${d.message}` +
        (d.params?.allowedValues ? ` (${d.params.allowedValues.join(", ")})` : ""));
  }
  strict(obj, n.cls, "", errors);
  return errors;
}

let failed = false;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length) {
      console.log(`${file}: document ${i + 1}: not YAML: ${doc.errors[0].message}`);
      failed = true;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    const what = `${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"}`;
    const errors = await validate(obj);
    if (errors.length) {
      failed = true;
      for (const e of errors) console.log(`${file}: ${what}: ${e}`);
    } else {
      console.log(`${file}: ${what}: valid`);
    }
  }
}
process.exit(failed ? 1 : 0);
