/**
 * "Did you mean": the option or field a client most likely meant, for names spelt as other
 * libraries spell them (ReLU, batch_size, xavier_uniform, BCEWithLogitsLoss), and for typos
 * (tahn, activaton, parms).
 */
const normal = (name: string) => name.toLowerCase().replace(/[-_\s]/g, '');

/** Other libraries' names for this API's options, normalised. */
const ALIASES: Record<string, string> = {
  identity: 'linear',
  none: 'linear',
  swish: 'silu',
  logistic: 'sigmoid',
  xavieruniform: 'glorot_uniform',
  xaviernormal: 'glorot_normal',
  kaiminguniform: 'he_uniform',
  kaimingnormal: 'he_normal',
  bcewithlogits: 'bce_logits',
  bcewithlogitsloss: 'bce_logits',
  sigmoidbinarycrossentropy: 'bce_logits',
  binarycrossentropy: 'bce',
  bceloss: 'bce',
  meansquarederror: 'mse',
  mseloss: 'mse',
  crossentropy: 'softmax_cross_entropy',
  categoricalcrossentropy: 'softmax_cross_entropy',
  softmaxcrossentropywithlogits: 'softmax_cross_entropy',
  // these two take class indices
  crossentropyloss: 'softmax_cross_entropy_with_integer_labels',
  sparsecategoricalcrossentropy: 'softmax_cross_entropy_with_integer_labels',
  sgdm: 'momentum',
  cce: 'softmax_cross_entropy',
};

/**
 * Other libraries' names for things this API does not have, within a typo of one it has
 * (adamw of adam, mae of mse, prelu of relu): no "did you mean", which would offer another
 * algorithm as if it were a spelling.
 */
const NOT_TYPOS = new Set([
  ...['adamw', 'nadam', 'radam', 'adamax', 'mae', 'msle', 'prelu', 'rrelu', 'relu6', 'selu', 'celu'],
  ...['float64', 'float16', 'bfloat16', 'float8', 'int32', 'int64', 'int16', 'int8', 'uint8'],
]);

/** The allowed option `given` most likely means, if any. */
export function meantOption(given: string, allowed: readonly string[]): string | undefined {
  const n = normal(given);
  const alias = ALIASES[n];
  return (
    allowed.find((option) => normal(option) === n) ??
    (alias && allowed.includes(alias) ? alias : NOT_TYPOS.has(n) ? undefined : closest(n, allowed))
  );
}

/**
 * The one candidate a typo of `n` (normalised) most likely is: within one edit (a letter
 * missing, extra, wrong, or two swapped) for names of up to 4 letters, two for longer ones,
 * and fewer edits than `n` has letters (a one-letter name is no typo of another); none when
 * two candidates are as close, or when `n` is itself a candidate's name (adam's `momentum`
 * sent to sgd, `b1` to sgd: a real name, only not taken there).
 */
function closest(n: string, candidates: Iterable<string>): string | undefined {
  const most = Math.min(n.length <= 4 ? 1 : 2, n.length - 1);
  let best: string | undefined;
  let bestDistance = most + 1;
  let tied = false;
  for (const candidate of candidates) {
    const d = editDistance(n, normal(candidate));
    if (d === 0) return undefined;
    if (d > most) continue;
    if (d < bestDistance) [best, bestDistance, tied] = [candidate, d, false];
    else if (d === bestDistance) tied = true;
  }
  return tied ? undefined : best;
}

/** Edits (insert, delete, substitute, swap two neighbours) from a to b: optimal string alignment; 3 for "more than closest() takes". */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
    if (Math.min(...d[i]!) > 2) return 3; // no path back under 3 edits
  }
  return d[a.length]![b.length]!;
}

/**
 * Other libraries' names for fields, normalised: Flax's and Keras's kernel (in × out, as W),
 * PyTorch's weight (out × in: see PYTORCH_WEIGHT), bias, PyTorch's lr for learningRate (and
 * its names for Adam's settings, betas and epsilon), the step count's and the options' usual
 * names, the batch's usual names (inputs, targets, labels); for /init, the usual names of an MLP's widths (Flax's features), of an initializer
 * (Keras's kernel_initializer) and of a seed (JAX's key, scikit-learn's random_state).
 */
const FIELD_ALIASES: Record<string, string> = {
  kernel: 'W',
  weight: 'W',
  weights: 'W',
  bias: 'b',
  biases: 'b',
  lr: 'learningRate',
  learningrate: 'learningRate',
  stepsize: 'learningRate',
  beta1: 'b1',
  beta2: 'b2',
  epsilon: 'eps',
  numsteps: 'steps',
  nsteps: 'steps',
  iterations: 'steps',
  numiterations: 'steps',
  epochs: 'steps',
  act: 'activation',
  activationfn: 'activation',
  hiddenactivation: 'activation',
  lossfn: 'loss',
  optim: 'optimizer',
  opt: 'optimizer',
  minibatchsize: 'batchSize',
  parameters: 'params',
  inputs: 'x',
  input: 'x',
  targets: 'y',
  target: 'y',
  labels: 'y',
  widths: 'layers',
  sizes: 'layers',
  layersizes: 'layers',
  dims: 'layers',
  features: 'layers',
  units: 'layers',
  init: 'scheme',
  initializer: 'scheme',
  kernelinit: 'scheme',
  kernelinitializer: 'scheme',
  biasinit: 'biasScheme',
  biasinitializer: 'biasScheme',
  key: 'seed',
  rng: 'seed',
  randomseed: 'seed',
  randomstate: 'seed',
};

/** What to say of PyTorch's weight beside "did you mean W": its layout is the transpose. */
export const PYTORCH_WEIGHT = "PyTorch's weight is out × in and W is in × out: send weight's transpose (weight.T)";
export const isPytorchWeight = (name: string) => normal(name) === 'weight';

/** The field `given` most likely means (batch_size → batchSize, kernel → W), among those its object takes. */
export function meantField(given: string, fields: Iterable<string>): string | undefined {
  const n = normal(given);
  const allowed = [...fields];
  for (const field of allowed) if (normal(field) === n && field !== given) return field;
  const alias = FIELD_ALIASES[n];
  return alias && allowed.includes(alias) ? alias : closest(n, allowed);
}
