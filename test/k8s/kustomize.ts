/**
 * A small kustomize, enough for docker/k8s and no more, so the manifests can be rendered and
 * checked where no `kustomize` or `kubectl` is installed (CI). It implements `resources`
 * (files and directories), `patches` (strategic merge patches given by path) and `images`
 * (newName, newTag), and refuses any other field rather than ignore it. Where `kubectl` is
 * installed, the tests also compare its output with `kubectl kustomize`.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [key: string]: unknown };
  [key: string]: unknown;
}

interface Kustomization {
  resources?: string[];
  patches?: { path: string }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

const FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images']);

export function loadYaml(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    return doc.toJS() as K8sObject;
  });
}

export function render(dir: string): K8sObject[] {
  const k = loadYaml(join(dir, 'kustomization.yaml'))[0] as unknown as Kustomization & Record<string, unknown>;
  const unknown = Object.keys(k).filter((f) => !FIELDS.has(f));
  if (unknown.length > 0) throw new Error(`${dir}/kustomization.yaml uses ${unknown.join(', ')}: not implemented by test/k8s/kustomize.ts`);

  const objects = (k.resources ?? []).flatMap((r) => {
    const path = join(dir, r);
    return statSync(path).isDirectory() ? render(path) : loadYaml(path);
  });
  for (const { path, ...rest } of k.patches ?? []) {
    if (Object.keys(rest).length > 0) throw new Error(`patch ${path}: only patches by path are implemented`);
    for (const patch of loadYaml(join(dir, path))) {
      const i = objects.findIndex((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name);
      if (i < 0) throw new Error(`patch ${path}: no ${patch.kind}/${patch.metadata.name} to patch`);
      objects[i] = merge(objects[i], patch) as K8sObject;
    }
  }
  for (const image of k.images ?? []) setImage(objects, image);
  return objects;
}

/**
 * The lists that a strategic merge patch merges element by element, by their merge key
 * (the Kubernetes API's patchMergeKey); every other list is replaced whole.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(base: unknown, patch: unknown, field = ''): unknown {
  if (Array.isArray(patch)) {
    const key = MERGE_KEYS[field];
    if (!key || !Array.isArray(base)) return structuredClone(patch);
    const out = structuredClone(base) as Record<string, unknown>[];
    for (const item of patch as Record<string, unknown>[]) {
      const j = out.findIndex((e) => e[key] === item[key]);
      if (j >= 0) out[j] = merge(out[j], item) as Record<string, unknown>;
      else out.push(structuredClone(item));
    }
    return out;
  }
  if (isObject(patch) && isObject(base)) {
    const out: Record<string, unknown> = structuredClone(base);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in base ? merge(base[k], v, k) : structuredClone(v);
    }
    return out;
  }
  return structuredClone(patch);
}

function setImage(objects: K8sObject[], { name, newName, newTag }: NonNullable<Kustomization['images']>[number]): void {
  for (const o of objects) {
    const pod = (o.spec as { template?: { spec?: { containers?: { image: string }[]; initContainers?: { image: string }[] } } })?.template
      ?.spec;
    for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
      const [, repo, tag] = /^([^:@]+)(?::([^@]+))?/.exec(c.image) ?? [];
      if (repo !== name) continue;
      c.image = `${newName ?? repo}${(newTag ?? tag) ? `:${newTag ?? tag}` : ''}`;
    }
  }
}
