import { FLOAT32_OVERFLOW } from '../engine/float32.js';
import { BIAS_SCHEMES, DEFAULT_SCALE, INIT_SCHEMES } from '../engine/init.js';
import { ACTIVATIONS, LOSSES, REDUCTIONS } from '../engine/types.js';
import { LAYERS_CEILING } from '../runtime/limits.js';
import { forwardIssues, initIssues, optionIssues, type ShapeIssue, shapeIssues, trainIssues } from './shape-checks.js';
import { Base64Tensor, FLOAT32_RANGE, MatrixIn, OUTPUT_ENCODINGS, plural, TargetsIn, VectorIn } from './tensors.js';
import { z } from './zod.js';

const UInt32 = z
  .number()
  .int()
  .min(0)
  .max(2 ** 32 - 1);

export const LayerParams = z
  .strictObject({
    W: MatrixIn.describe('Weights, in × out (JAX convention: x @ W + b).'),
    b: VectorIn.describe('Bias, out entries.'),
  })
  .describe('One dense layer.');

// bounded here, above any GRADSERVE_MAX_LAYERS, so that zod never checks millions of layers
const Params = z
  .array(LayerParams)
  .max(LAYERS_CEILING, { error: `has more than ${LAYERS_CEILING} layers, the most GRADSERVE_MAX_LAYERS may allow` })
  .describe("The layers, input to output; layer i+1 takes layer i's outputs.");

/**
 * A positive setting that must stay finite, and positive, in float32 (the optimizer's, /init's
 * scale). A failed check stops the later ones: -0.1 is not also "too small for float32".
 */
const positiveFloat32 = () =>
  z
    .number()
    .positive({ abort: true })
    .lt(FLOAT32_OVERFLOW, { error: FLOAT32_RANGE, abort: true })
    .refine((v) => Math.fround(v) > 0, { error: "is too small for float32: it would round to 0 (float32's smallest is 1.4e-45)" });

const outputEncoding = z
  .enum(OUTPUT_ENCODINGS)
  .default('json')
  .describe('How the response writes tensors: json (lists of numbers) or base64 (binary tensors, smaller and faster).');

/** The network and its inputs: what every compute endpoint takes. */
const networkFields = {
  params: Params,
  x: MatrixIn.describe('Inputs, batch × in_0.'),
  activation: z.enum(ACTIVATIONS).default('tanh').describe('Activation of every hidden layer.'),
  outputEncoding,
};

/** Targets and the loss options of /loss, /value-and-grad and /train. */
const lossFields = {
  y: TargetsIn.describe(
    'Targets, batch × out_last; or a flat list of batch numbers when out_last = 1, or of class indices for ' +
      'softmax_cross_entropy_with_integer_labels.',
  ),
  outputActivation: z
    .enum(ACTIVATIONS)
    .optional()
    .describe('Activation of the last layer. Default: what the loss expects, sigmoid for bce, linear for the others.'),
  loss: z
    .enum(LOSSES)
    .default('bce')
    .describe(
      "bce: binary cross-entropy with JAX's clip(p, 1e-8, 1 - 1e-8). bce_logits: optax.sigmoid_binary_cross_entropy on the " +
        "last layer's pre-activation z, −y·log_sigmoid(z) − (1 − y)·log_sigmoid(−z) (outputActivation must be linear). " +
        'mse: (pred − y)², no ½. Each per element, then reduced as reduction says. softmax_cross_entropy: ' +
        "optax.softmax_cross_entropy on the last layer's pre-activations, −Σ_j y_j·log_softmax(z)_j per row (y: one " +
        'probability distribution per row, one-hot for class labels; outputActivation must be linear; at least 2 outputs). ' +
        'softmax_cross_entropy_with_integer_labels: the same from class indices, optax.softmax_cross_entropy_with_integer_labels ' +
        '(y: a flat list of one integer per row, from 0 to out_last − 1).',
    ),
  reduction: z
    .enum(REDUCTIONS)
    .default('mean')
    .describe(
      'mean over all batch × out elements (over the batch rows for the softmax cross-entropies, as optax users average their ' +
        'per-example values), or sum (add up the results of batch shards).',
    ),
};

type Ctx = z.RefinementCtx;
/**
 * The cross-field checks, run once every field has parsed: after a field's own issue (a
 * negative shape, say) they would read it unparsed and add nonsense to a clear message.
 */
const report = (ctx: Ctx, issues: () => ShapeIssue[]) => {
  if (ctx.issues.length > 0) return;
  for (const issue of issues()) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
};

export const ComputeRequest = z
  .strictObject({ ...networkFields, ...lossFields })
  .superRefine((body, ctx) => report(ctx, () => [...shapeIssues(body), ...optionIssues(body)]))
  .describe('An MLP, a batch and the loss options.');
export type ComputeRequest = z.infer<typeof ComputeRequest>;

export const ForwardRequest = z
  .strictObject({
    ...networkFields,
    outputActivation: z
      .enum([...ACTIVATIONS, 'softmax'])
      .optional()
      .describe(
        "Activation of the last layer. Default: the loss's, as /train uses (sigmoid for bce or no loss, linear for the others). " +
          'softmax (here only): the class probabilities of each row, jax.nn.softmax of the logits, for a network trained with a softmax cross-entropy.',
      ),
    loss: z
      .enum(LOSSES)
      .optional()
      .describe(
        "The loss the network was trained with, only to pick outputActivation's default as /train does; nothing is computed with it.",
      ),
  })
  .superRefine((body, ctx) => report(ctx, () => [...shapeIssues(body), ...forwardIssues(body)]))
  .describe('An MLP and a batch of inputs.');
export type ForwardRequest = z.infer<typeof ForwardRequest>;

const learningRate = positiveFloat32().describe('Step size (optax learning_rate).');

/**
 * adam's decays: below 1 in float32 too, where optax computes 1 − b^t; one that rounds to 1
 * makes that 0, and the bias correction divides by it (every parameter Infinity, or none moved).
 */
const adamDecay = () =>
  z
    .number()
    .min(0)
    .lt(1, { abort: true })
    .refine((v) => Math.fround(v) < 1, {
      error: "rounds to 1 in float32, where adam's bias correction 1 − b^t is then 0: use at most 0.99999994",
    });
export const Optimizer = z
  .discriminatedUnion('name', [
    z.strictObject({ name: z.literal('sgd'), learningRate }).describe('optax.sgd(learningRate): p -= lr·g.'),
    z
      .strictObject({
        name: z.literal('momentum'),
        learningRate,
        momentum: z.number().min(0).max(1).default(0.9).describe('Decay of the trace.'),
      })
      .describe('optax.sgd(learningRate, momentum): v = g + momentum·v, p -= lr·v (not Nesterov).'),
    z
      .strictObject({
        name: z.literal('adam'),
        learningRate,
        b1: adamDecay().default(0.9).describe('Decay of the first moment (the mean of the gradients).'),
        b2: adamDecay().default(0.999).describe('Decay of the second moment (the mean of their squares).'),
        eps: positiveFloat32().default(1e-8).describe('Added to the root of the second moment, outside it (eps_root is 0).'),
      })
      .describe('optax.adam(learningRate, b1, b2, eps), eps_root 0, with bias correction.'),
  ])
  .describe("The optimizer, with optax's defaults and update rules.");

export const TrainRequest = z
  .strictObject({
    ...networkFields,
    ...lossFields,
    optimizer: Optimizer,
    steps: z
      .number()
      .int()
      .min(1)
      .describe('Optimizer steps (limited by GRADSERVE_MAX_TRAIN_STEPS and GRADSERVE_MAX_TRAIN_WORK, see /info).'),
    batchSize: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('Rows per step, at most the rows of x, drawn by a seeded shuffle of x, epoch after epoch; the whole batch when absent.'),
    seed: UInt32.default(0).describe('Seed of the minibatch shuffle: used only with a batchSize smaller than the batch.'),
  })
  .superRefine((body, ctx) => report(ctx, () => [...shapeIssues(body), ...optionIssues(body), ...trainIssues(body)]))
  .describe('An MLP, a batch, the loss options and an optimizer: gradient descent from params.');

export const InitRequest = z
  .strictObject({
    layers: z
      .array(z.number().int().min(1))
      .min(2, { error: (issue) => `has ${plural((issue.input as unknown[]).length, 'width')}; it needs at least 2 (inputs and outputs)` })
      .max(LAYERS_CEILING + 1, {
        error: `has more than ${LAYERS_CEILING + 1} widths (${LAYERS_CEILING} layers, the most GRADSERVE_MAX_LAYERS may allow)`,
      })
      .describe('Widths, input to output: [in, hidden..., out].'),
    seed: UInt32.default(0).describe('The same seed gives the same params on every machine.'),
    scheme: z.enum(INIT_SCHEMES).default('glorot_normal').describe("Weights: jax.nn.initializers' distribution of that name."),
    scale: positiveFloat32().optional().describe(`Standard deviation of the normal scheme and normal biases (default ${DEFAULT_SCALE}).`),
    biasScheme: z.enum(BIAS_SCHEMES).default('zeros').describe('Biases: zeros, or normal with standard deviation scale.'),
    outputEncoding,
  })
  .superRefine((body, ctx) => report(ctx, () => initIssues(body)))
  .describe('The shape of an MLP and how to initialise it.');

/** JSON has no NaN or Infinity: non-finite results are written as these strings. */
const Num = z
  .union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])])
  .describe('A float32 result; "NaN", "Infinity" or "-Infinity" where it is not finite.');

const Warnings = z
  .array(z.string())
  .optional()
  .describe(
    'Present when a result is not finite, when the input looks mistaken (bce given predictions outside [0, 1] or stuck under ' +
      'its clip, targets outside [0, 1], softmax targets whose rows do not sum to 1), or when /train stopped early or its ' +
      'seed changed nothing: what happened and what to do.',
  );
const MatrixOut = z.union([z.array(z.array(Num)), Base64Tensor]).describe('Rows of numbers, or a binary tensor (outputEncoding base64).');
const VectorOut = z.union([z.array(Num), Base64Tensor]).describe('A list of numbers, or a binary tensor (outputEncoding base64).');
const NumTree = z.array(z.object({ W: MatrixOut, b: VectorOut }));

export const LossResponse = z
  .object({ loss: Num.describe('The loss, as JAX computes it in float32.'), warnings: Warnings })
  .describe('The loss only.');

export const ValueAndGradResponse = z
  .object({
    loss: Num.describe('The loss, as JAX computes it in float32.'),
    grads: NumTree.describe('d loss / d params, with exactly the structure and shapes of params.'),
    warnings: Warnings,
  })
  .describe('The loss and its gradient tree (jax.value_and_grad).');

export const ForwardResponse = z
  .object({ predictions: MatrixOut.describe('batch × out_last, after the output activation.'), warnings: Warnings })
  .describe("The network's predictions.");

export const TrainResponse = z
  .object({
    params: NumTree.describe('The trained parameters, in the request format.'),
    loss: Num.describe('The loss of the returned params on the whole batch.'),
    history: z
      .array(z.object({ step: z.number().int().min(0), loss: Num }))
      .describe('The loss before each recorded step (of its minibatch): every step up to 100, then every ⌈steps/100⌉-th and the last.'),
    warnings: Warnings,
  })
  .describe('Trained parameters and the loss along the way.');

export const InitResponse = z
  .object({
    params: z
      .array(z.object({ W: z.union([z.array(z.array(z.number())), Base64Tensor]), b: z.union([z.array(z.number()), Base64Tensor]) }))
      .describe('Float32 values, in the request format (binary tensors with outputEncoding base64).'),
  })
  .describe('Initial parameters.');

export const ErrorResponse = z
  .object({
    statusCode: z.number().int().min(400).max(599),
    code: z.string(),
    error: z.string(),
    message: z
      .string()
      .describe(
        'What went wrong: for a 400 which field and why, for a 413 which limit; otherwise what to do (retry later, or ask for less at once).',
      ),
  })
  .describe("An error, in fastify's shape.");

export const HealthResponse = z.object({ status: z.literal('ok') }).describe('The process is serving.');
export const ReadyResponse = z
  .object({
    status: z.literal('ready'),
    backend: z.string().describe('GRADSERVE_BACKEND: a backend, or auto (each request where the cost model sends it).'),
    backends: z.array(z.string()).describe('The backends started and answering their probe.'),
  })
  .describe('Every backend answered its probe kernel correctly.');
export const NotReadyResponse = ErrorResponse.describe('A backend did not answer its probe (GRADSERVE_ENGINE_UNAVAILABLE).');

export const InfoResponse = z
  .object({
    version: z.string(),
    backend: z.string().describe('GRADSERVE_BACKEND: a backend, or auto (each request where the cost model sends it).'),
    backends: z.array(z.string()).describe('The backends started and answering their probe.'),
    gpu: z
      .string()
      .describe(
        'What start-up found of a GPU for the webgpu backend, and whether it is used: "webgpu runs on a hardware adapter (…)", ' +
          'or why not (no GPU device node, no adapter, a software adapter that auto leaves unused, another backend forced).',
      ),
    kernelCache: z
      .object({
        size: z.number().int(),
        capacity: z.number().int(),
        bytes: z.number().int().describe("Memory the cached kernels keep: their arguments' and results' buffers."),
        maxBytes: z
          .number()
          .int()
          .describe('The most they may keep (GRADSERVE_KERNEL_CACHE_BYTES); the least recently used beyond it are freed.'),
        compiles: z.number().int(),
        hits: z.number().int(),
        evictions: z.number().int(),
        compileMsTotal: z.number(),
      })
      .describe('Compiled kernels: how many are kept and how they were found.'),
    limits: z
      .object({
        bodyBytes: z.number().int().describe('GRADSERVE_BODY_LIMIT'),
        layers: z.number().int().describe('GRADSERVE_MAX_LAYERS'),
        width: z.number().int().describe('GRADSERVE_MAX_WIDTH'),
        batch: z.number().int().describe('GRADSERVE_MAX_BATCH'),
        work: z.number().describe('GRADSERVE_MAX_WORK: batch × Σ in×out'),
        activations: z.number().int().describe('GRADSERVE_MAX_ACTIVATIONS: batch × Σ out'),
        trainSteps: z.number().int().describe('GRADSERVE_MAX_TRAIN_STEPS'),
        trainWork: z.number().describe('GRADSERVE_MAX_TRAIN_WORK: steps × rows per step × Σ (in + 1)·out'),
        initParams: z.number().int().describe('GRADSERVE_MAX_INIT_PARAMS'),
      })
      .describe('What one request may ask for; over a limit is a 413 that names it.'),
    admission: z
      .object({
        maxConcurrency: z.number().int().describe('GRADSERVE_MAX_CONCURRENCY'),
        maxQueue: z.number().int().describe('GRADSERVE_MAX_QUEUE'),
        readAhead: z.number().int().describe('GRADSERVE_READ_AHEAD'),
        requestTimeoutMs: z.number().int().describe('GRADSERVE_REQUEST_TIMEOUT_MS'),
        minUploadRate: z.number().int().describe('GRADSERVE_MIN_UPLOAD_RATE: bytes a second a body must arrive at, after the grace'),
        uploadGraceMs: z.number().int().describe('GRADSERVE_UPLOAD_GRACE_MS'),
      })
      .describe('How many requests compute at once, how many may wait, and for how long.'),
    threads: z
      .object({
        webasm: z
          .number()
          .int()
          .optional()
          .describe("GRADSERVE_WEBASM_THREADS: webasm's worker threads (absent when webasm is not started)"),
        json: z.number().int().describe('GRADSERVE_JSON_WORKERS: threads for large JSON bodies and answers'),
      })
      .describe("Compute and JSON threads; by default sized to the CPUs this process may use, a container's CPU limit included."),
    malloc: z
      .enum(['tuned', 'default', 'not glibc'])
      .describe(
        "glibc malloc's settings: `tuned` when GLIBC_TUNABLES sets its mmap threshold (`npm start` and the image set the recommended value; large requests then reuse memory instead of faulting in fresh pages), `default` when it does not, `not glibc` under another C library.",
      ),
  })
  .describe('What this server is and how it is configured.');

/**
 * Each POST route's body and 200 answer, by URL: the routes declare them, and the JSON
 * worker threads (json-worker.ts) validate and write large bodies with the same schemas.
 */
export const POST_ROUTES = {
  '/value-and-grad': { body: ComputeRequest, ok: ValueAndGradResponse },
  '/loss': { body: ComputeRequest, ok: LossResponse },
  '/forward': { body: ForwardRequest, ok: ForwardResponse },
  '/train': { body: TrainRequest, ok: TrainResponse },
  '/init': { body: InitRequest, ok: InitResponse },
} as const;
export type PostRoute = keyof typeof POST_ROUTES;
export const isPostRoute = (url: string | undefined): url is PostRoute => url !== undefined && Object.hasOwn(POST_ROUTES, url);

const ERROR_ANSWERS = {
  400: ErrorResponse,
  408: ErrorResponse,
  413: ErrorResponse,
  415: ErrorResponse,
  417: ErrorResponse,
  501: ErrorResponse,
  503: ErrorResponse,
};

/** A POST route's body and response schemas, for its route definition. */
export function postSchemas<U extends PostRoute>(url: U) {
  return { body: POST_ROUTES[url].body, response: { 200: POST_ROUTES[url].ok, ...ERROR_ANSWERS } } as {
    body: (typeof POST_ROUTES)[U]['body'];
    response: { 200: (typeof POST_ROUTES)[U]['ok'] } & typeof ERROR_ANSWERS;
  };
}

/**
 * The fields each object of a route's body may hold, by its path with array indices as `*`
 * ('' for the body, 'optimizer', 'params.*', 'params.*.W' for a binary tensor): for "did you
 * mean" (suggest.ts), which must only suggest a field the object would take.
 */
export const FIELDS_AT: Record<PostRoute, ReadonlyMap<string, ReadonlySet<string>>> = (() => {
  const fieldsOf = (body: z.ZodType) => {
    const at = new Map<string, Set<string>>();
    const walk = (schema: z.ZodType, path: string) => {
      const def = schema._zod.def as unknown as Record<string, unknown>;
      if (def.type === 'object') {
        const shape = def.shape as Record<string, z.ZodType>;
        const names = at.get(path) ?? new Set<string>();
        at.set(path, names);
        for (const [name, field] of Object.entries(shape)) {
          names.add(name);
          walk(field, path ? `${path}.${name}` : name);
        }
      }
      if (def.type === 'array') walk(def.element as z.ZodType, path ? `${path}.*` : '*');
      for (const key of ['innerType', 'in', 'out']) if (def[key]) walk(def[key] as z.ZodType, path);
      for (const option of (def.options as z.ZodType[] | undefined) ?? []) walk(option, path);
    };
    walk(body, '');
    return at;
  };
  const byRoute = {} as Record<PostRoute, ReadonlyMap<string, ReadonlySet<string>>>;
  for (const route of Object.keys(POST_ROUTES) as PostRoute[]) byRoute[route] = fieldsOf(POST_ROUTES[route].body);
  return byRoute;
})();
