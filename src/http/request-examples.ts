import { toBase64Tensor } from './tensors.js';

/** The XOR lesson's network: the example every endpoint's documentation starts from. */
export const xorRequest = {
  params: [
    {
      W: [
        [0.5, -0.3, 0.8, 0.1],
        [-0.6, 0.9, 0.2, -0.4],
      ],
      b: [0, 0.1, -0.1, 0],
    },
    { W: [[0.7], [-0.5], [0.3], [0.9]], b: [0.05] },
  ],
  x: [
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ],
  y: [[0], [1], [1], [0]],
  activation: 'tanh',
  outputActivation: 'sigmoid',
  loss: 'bce',
  reduction: 'mean',
} as const;

/** The lesson's forward pass: the same network and inputs, no targets. */
export const xorForwardRequest = {
  params: xorRequest.params,
  x: xorRequest.x,
  activation: xorRequest.activation,
  outputActivation: xorRequest.outputActivation,
} as const;

/** The lesson's network shape, initialised as the lesson would. */
export const xorInitRequest = { layers: [2, 4, 1], seed: 0, scheme: 'glorot_normal' } as const;

/** The XOR network trained to a loss below 0.05 (0.0012 after these 500 steps, on both backends; README, "Training"). */
export const xorTrainRequest = {
  ...xorRequest,
  optimizer: { name: 'adam', learningRate: 0.05 },
  steps: 500,
} as const;

/** Three classes: one-hot targets, softmax cross-entropy on the last layer's logits (its output activation is linear). */
export const threeClassRequest = {
  params: [
    {
      W: [
        [0.4, -0.2, 0.1],
        [-0.3, 0.5, 0.2],
      ],
      b: [0, 0, 0],
    },
    {
      W: [
        [0.6, -0.1, 0.2],
        [0.1, 0.3, -0.5],
        [-0.2, 0.4, 0.3],
      ],
      b: [0, 0, 0],
    },
  ],
  x: [
    [1, 0],
    [0, 1],
    [1, 1],
  ],
  y: [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ],
  activation: 'relu',
  loss: 'softmax_cross_entropy',
} as const;

/** /forward of the three-class network: each row's class probabilities, the softmax of its logits. */
export const threeClassForwardRequest = {
  params: threeClassRequest.params,
  x: threeClassRequest.x,
  activation: threeClassRequest.activation,
  loss: threeClassRequest.loss,
  outputActivation: 'softmax',
} as const;

/** The same three examples with their classes as indices (PyTorch's CrossEntropyLoss and MNIST's labels take them so). */
export const threeClassLabelsRequest = {
  ...threeClassRequest,
  y: [0, 1, 2],
  loss: 'softmax_cross_entropy_with_integer_labels',
} as const;

/** Float32 values as a binary tensor (little-endian, row-major, base64), as a client would send them. */
const binary = (shape: number[], values: readonly number[]) => toBase64Tensor(shape, new Float32Array(values));

/** The XOR request with every tensor binary, asking for binary tensors back. */
export const xorBinaryRequest = {
  ...xorRequest,
  params: xorRequest.params.map((p) => ({ W: binary([p.W.length, p.W[0]!.length], p.W.flat()), b: binary([p.b.length], p.b) })),
  x: binary([4, 2], xorRequest.x.flat()),
  y: binary([4], xorRequest.y.flat()),
  outputEncoding: 'base64',
} as const;

/**
 * The request examples of the OpenAPI document (and so of the Swagger UI), by path. They are
 * attached to the document here rather than to the zod schemas because zod leaves examples
 * out of a schema's input form once it transforms (as the tensor fields do).
 */
export const requestExamples: Record<string, Record<string, { summary: string; description?: string; value: unknown }>> = {
  '/value-and-grad': {
    xor: { summary: 'The XOR lesson', value: xorRequest },
    xorBinary: {
      summary: 'The XOR lesson with binary tensors (in and out)',
      description:
        'Each tensor as `{"dtype": "float32", "shape": [...], "data": "<base64>"}`: the float32 values, little-endian, row by row. ' +
        "In Python, `base64.b64encode(a.astype('<f4').tobytes())` writes one, and " +
        "`np.frombuffer(base64.b64decode(t['data']), '<f4').reshape(t['shape'])` reads one back. " +
        'About a third the size of JSON numbers and much faster to parse: for large batches.',
      value: xorBinaryRequest,
    },
    threeClasses: { summary: 'Three classes: softmax cross-entropy on one-hot targets', value: threeClassRequest },
    threeClassLabels: {
      summary: 'Three classes: softmax cross-entropy on class indices',
      description: 'y holds one class index per row (0 to out − 1), as MNIST labels come: the same loss and gradients as the one-hot rows.',
      value: threeClassLabelsRequest,
    },
  },
  '/loss': { xor: { summary: 'The XOR lesson', value: xorRequest } },
  '/forward': {
    xor: { summary: 'The XOR lesson', value: xorForwardRequest },
    threeClassProbabilities: { summary: 'Three classes: the class probabilities of each row (softmax)', value: threeClassForwardRequest },
  },
  '/train': { xor: { summary: 'Train the XOR network to a loss below 0.05', value: xorTrainRequest } },
  '/init': { xor: { summary: "The XOR lesson's network shape", value: xorInitRequest } },
};

const XOR_ANSWER = "The answer to the XOR lesson's example";

/**
 * What the service answers to each `xor` example above, shown in the Swagger UI under the 200
 * response (a test checks them against the live answers, to float32 rounding).
 */
export const answerExamples: Record<string, { summary: string; value: unknown }> = {
  '/loss': { summary: XOR_ANSWER, value: { loss: 0.7299889922142029 } },
  '/value-and-grad': {
    summary: XOR_ANSWER,
    value: {
      loss: 0.7299889922142029,
      grads: [
        {
          W: [
            [0.026457302272319794, 0.006289936602115631, -0.000417560338973999, 0.01235949993133545],
            [-0.020677663385868073, 0.006142128258943558, -0.03963169455528259, -0.057291820645332336],
          ],
          b: [0.02116270363330841, -0.0160980224609375, -0.018399816006422043, -0.018263384699821472],
        },
        { W: [[0.05122711881995201], [-0.04996053874492645], [-0.006086981855332851], [0.031992971897125244]], b: [-0.038938529789447784] },
      ],
    },
  },
  '/forward': {
    summary: XOR_ANSWER,
    value: { predictions: [[0.49256694316864014], [0.26526403427124023], [0.6776911020278931], [0.4087238311767578]] },
  },
  '/train': {
    summary: `${XOR_ANSWER}, its history cut to every 100th step here (the service sends 101 entries: every 5th step and the last)`,
    value: {
      params: [
        {
          W: [
            [2.2936575412750244, -3.026174545288086, 3.4279897212982178, -4.149504661560059],
            [-4.233789920806885, 4.247252464294434, 3.0655922889709473, 2.9787936210632324],
          ],
          b: [-0.6697381734848022, 1.3007593154907227, -0.6574230194091797, -0.9909442067146301],
        },
        { W: [[3.673464059829712], [-3.4834415912628174], [3.956610679626465], [6.483131408691406]], b: [3.2211122512817383] },
      ],
      loss: 0.001199079561047256,
      history: [
        { step: 0, loss: 0.7299889922142029 },
        { step: 100, loss: 0.01422632485628128 },
        { step: 200, loss: 0.004843420814722776 },
        { step: 300, loss: 0.0026251275558024645 },
        { step: 400, loss: 0.0016925409436225891 },
        { step: 499, loss: 0.0012028265045955777 },
      ],
    },
  },
  '/init': {
    summary: XOR_ANSWER,
    value: {
      params: [
        {
          W: [
            [-0.12887753546237946, -0.48667111992836, 1.0439988374710083, 0.11762119084596634],
            [0.050658296793699265, -0.2326357215642929, 0.7257669568061829, 0.21178987622261047],
          ],
          b: [0, 0, 0, 0],
        },
        { W: [[-0.18584249913692474], [-0.2644783854484558], [0.03246584162116051], [0.4524593949317932]], b: [0] },
      ],
    },
  },
};
