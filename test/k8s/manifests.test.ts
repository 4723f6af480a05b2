/**
 * docker/k8s, checked offline (no cluster runs here): each rendered object against the
 * Kubernetes 1.32 API schemas (kubernetes-models' validators, and its TypeScript types for
 * fields the API does not know), the container's environment against gradserve's own
 * configuration, and the settings that must agree with one another.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service } from 'kubernetes-models/v1';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { ENV_VARS, loadConfig } from '../../src/runtime/config.js';
import { type K8sObject, render } from './kustomize.js';

const repo = new URL('../../', import.meta.url).pathname;
const k8s = join(repo, 'docker/k8s');
const variants = { base: render(join(k8s, 'base')), gpu: render(join(k8s, 'overlays/gpu')) };

/** The kinds the manifests use: their model (validator) and their TypeScript type. */
const KINDS: Record<string, { model: new (data: never) => { validate(): void }; type: string; module: string }> = {
  'apps/v1 Deployment': { model: Deployment, type: 'IDeployment', module: 'kubernetes-models/apps/v1' },
  'v1 Service': { model: Service, type: 'IService', module: 'kubernetes-models/v1' },
  'autoscaling/v2 HorizontalPodAutoscaler': {
    model: HorizontalPodAutoscaler,
    type: 'IHorizontalPodAutoscaler',
    module: 'kubernetes-models/autoscaling/v2',
  },
  'policy/v1 PodDisruptionBudget': { model: PodDisruptionBudget, type: 'IPodDisruptionBudget', module: 'kubernetes-models/policy/v1' },
};
const kindOf = (o: K8sObject) => {
  const kind = KINDS[`${o.apiVersion} ${o.kind}`];
  assert.ok(kind, `${o.apiVersion} ${o.kind} is not a kind this test knows`);
  return kind;
};

function schemaErrors(o: K8sObject): string | null {
  try {
    new (kindOf(o).model)(o as never).validate();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * kubernetes-models' validators allow fields the API does not have (a misspelt `readinesProbe`
 * would pass), so each object is also type-checked as a literal of its kubernetes-models
 * type: TypeScript's excess-property check names every unknown field, at any depth.
 */
function typeErrors(objects: K8sObject[]): string[] {
  const file = join(repo, '__k8s_manifest_check__.ts');
  const source = objects
    .map((o, i) => {
      const { type, module } = kindOf(o);
      return `import type { ${type} as T${i} } from '${module}';\nexport const o${i}: T${i} = ${JSON.stringify(o)};`;
    })
    .join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) =>
    name === file ? ts.createSourceFile(name, source, lang) : getSourceFile.call(host, name, lang, ...rest);
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  host.readFile = (name) => (name === file ? source : readFile.call(host, name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    // two lines per object: the import and the literal
    const where = d.file && d.start !== undefined ? `object ${Math.floor(d.file.getLineAndCharacterOfPosition(d.start).line / 2)}: ` : '';
    return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
  });
}

type Container = {
  name: string;
  image: string;
  env: { name: string; value: string }[];
  resources: { requests: Record<string, string>; limits: Record<string, string | number> };
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  startupProbe?: { httpGet: { path: string; port: string }; periodSeconds: number; failureThreshold: number };
  lifecycle: { preStop: { exec: { command: string[] } } };
  ports: { name: string; containerPort: number }[];
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
};
type PodSpec = {
  containers: Container[];
  securityContext: Record<string, unknown>;
  terminationGracePeriodSeconds: number;
  runtimeClassName?: string;
  volumes: { name: string }[];
};
type Deploy = K8sObject & {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
};

const find = <T extends K8sObject>(objects: K8sObject[], kind: string) => {
  const o = objects.find((x) => x.kind === kind);
  assert.ok(o, `no ${kind}`);
  return o as T;
};
const gradserve = (objects: K8sObject[]) =>
  find<Deploy>(objects, 'Deployment').spec.template.spec.containers.find((c) => c.name === 'gradserve')!;
const envOf = (c: Container) => Object.fromEntries(c.env.map((e) => [e.name, e.value]));
const cores = (q: string | number) => (typeof q === 'string' && q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q));

describe('docker/k8s: Kubernetes manifests (offline)', () => {
  for (const [name, objects] of Object.entries(variants)) {
    it(`${name}: every object validates against the Kubernetes schema (kubernetes-models)`, () => {
      assert.deepEqual(objects.map((o) => o.kind).sort(), ['Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Service']);
      for (const o of objects) assert.equal(schemaErrors(o), null, `${o.kind}/${o.metadata.name}`);
    });
  }

  it('base and gpu: no field the Kubernetes API types do not have (TypeScript excess-property check)', () => {
    assert.deepEqual(typeErrors([...variants.base, ...variants.gpu]), []);
  });

  it('the checks catch what they are meant to: a wrong type, a misspelt field', () => {
    const d = structuredClone(find<Deploy>(variants.base, 'Deployment'));
    (d.spec.template.spec.containers[0]!.ports[0] as { containerPort: unknown }).containerPort = 'eighty';
    assert.match(schemaErrors(d) ?? '', /containerPort/);
    const typo = structuredClone(find<Deploy>(variants.base, 'Deployment'));
    (typo.spec.template.spec.containers[0] as unknown as Record<string, unknown>).readinesProbe = {};
    assert.match(typeErrors([typo]).join('\n'), /readinesProbe/);
  });

  for (const [name, objects] of Object.entries(variants)) {
    it(`${name}: the container's environment is a valid gradserve configuration, sized to the CPU limit`, () => {
      const c = gradserve(objects);
      const env = envOf(c);
      const unknown = Object.keys(env).filter((k) => !ENV_VARS.includes(k) && !['NODE_ENV', 'NVIDIA_DRIVER_CAPABILITIES'].includes(k));
      assert.deepEqual(unknown, [], 'every variable is one gradserve reads');
      const config = loadConfig(env); // throws on a value the server would refuse at start-up
      assert.equal(config.host, '0.0.0.0');
      assert.equal(config.port, c.ports.find((p) => p.name === 'http')!.containerPort);
      assert.equal(config.admission.maxConcurrency, cores(c.resources.limits.cpu!), 'one computation per core of the CPU limit');
      assert.equal(c.resources.requests.cpu, c.resources.limits.cpu, 'HPA utilisation is against the request');
      assert.ok(c.resources.requests.memory && c.resources.limits.memory);
    });
  }

  it('probes, shutdown and security follow the Kubernetes recommendations', () => {
    const deploy = find<Deploy>(variants.base, 'Deployment');
    const pod = deploy.spec.template.spec;
    const c = gradserve(variants.base);
    assert.equal(deploy.spec.replicas, undefined, 'the HPA owns the replica count');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.ok(c.startupProbe && c.startupProbe.periodSeconds * c.startupProbe.failureThreshold >= 30, 'start-up may take 30 s');
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe!]) assert.equal(probe.httpGet.port, 'http');

    // preStop sleep, then the server's shutdown grace, then its forced exit (server.ts: 3 s), all inside the pod's grace period
    const [cmd, seconds] = c.lifecycle.preStop.exec.command;
    assert.equal(cmd, 'sleep');
    const graceS = loadConfig(envOf(c)).shutdownGraceMs / 1000;
    assert.ok(
      Number(seconds) + graceS + 3 < pod.terminationGracePeriodSeconds,
      `${seconds} + ${graceS} + 3 s < ${pod.terminationGracePeriodSeconds} s`,
    );

    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual(c.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    assert.deepEqual(
      c.volumeMounts.map((m) => [m.name, m.mountPath]),
      [['tmp', '/tmp']],
    );
    assert.deepEqual(
      pod.volumes.map((v) => v.name),
      ['tmp'],
    );
  });

  it('the Service, autoscaler and disruption budget point at the Deployment', () => {
    const objects = variants.base;
    const deploy = find<Deploy>(objects, 'Deployment');
    const labels = deploy.spec.template.metadata.labels;
    const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    assert.ok(matches(deploy.spec.selector.matchLabels));
    const svc = find<K8sObject & { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } }>(objects, 'Service');
    assert.ok(matches(svc.spec.selector));
    assert.ok(svc.spec.ports.every((p) => gradserve(objects).ports.some((cp) => cp.name === p.targetPort)));
    const hpa = find<
      K8sObject & { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number; metrics: unknown[] } }
    >(objects, 'HorizontalPodAutoscaler');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deploy.metadata.name });
    assert.ok(hpa.spec.minReplicas >= 2, 'two replicas at least, so a drain never leaves none');
    assert.deepEqual(hpa.spec.metrics, [
      { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } },
    ]);
    const pdb = find<K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; maxUnavailable: number } }>(
      objects,
      'PodDisruptionBudget',
    );
    assert.ok(matches(pdb.spec.selector.matchLabels));
    assert.equal(pdb.spec.maxUnavailable, 1);
  });

  it('gpu overlay: a GPU, the NVIDIA runtime class and driver capabilities, the gpu image; the rest as the base', () => {
    const pod = find<Deploy>(variants.gpu, 'Deployment').spec.template.spec;
    const c = gradserve(variants.gpu);
    assert.equal(pod.runtimeClassName, 'nvidia');
    assert.equal(c.resources.limits['nvidia.com/gpu'], 1);
    assert.equal(c.image, 'gradserve:gpu');
    assert.equal(envOf(c).NVIDIA_DRIVER_CAPABILITIES, 'compute,utility,graphics');
    assert.equal(envOf(c).GRADSERVE_REQUIRE_GPU, '1', 'no start without the GPU');
    assert.equal(loadConfig(envOf(c)).backend, 'auto', 'each request where the cost model says');
    const base = gradserve(variants.base);
    assert.deepEqual(c.securityContext, base.securityContext);
    const rest = (env: Record<string, string>) => ({ ...env, NVIDIA_DRIVER_CAPABILITIES: undefined, GRADSERVE_REQUIRE_GPU: undefined });
    assert.deepEqual(rest(envOf(c)), rest(envOf(base)));
  });

  const kubectl = (() => {
    try {
      execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  it('renders as `kubectl kustomize` does', { skip: kubectl ? false : 'kubectl is not installed' }, () => {
    // Lists merged by key come out in another order from kustomize; compare them sorted.
    const normal = (v: unknown): unknown => {
      if (Array.isArray(v)) {
        const items = v.map(normal);
        return items.every((e) => e && typeof e === 'object' && 'name' in e)
          ? items.sort((a, b) => String((a as { name: string }).name).localeCompare((b as { name: string }).name))
          : items;
      }
      if (v && typeof v === 'object')
        return Object.fromEntries(
          Object.entries(v)
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([k, e]) => [k, normal(e)]),
        );
      return v;
    };
    const byId = (objects: unknown[]) =>
      objects
        .map((o) => normal(o) as K8sObject)
        .sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));
    for (const [name, dir] of [
      ['base', 'base'],
      ['gpu', 'overlays/gpu'],
    ] as const) {
      const out = execFileSync('kubectl', ['kustomize', join(k8s, dir)], { encoding: 'utf8' });
      const theirs = parseAllDocuments(out).map((d) => d.toJS());
      assert.deepEqual(byId(variants[name]), byId(theirs), name);
    }
  });
});
