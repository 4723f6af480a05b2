/**
 * The alternative service a JavaScript user would build instead of gradserve: Fastify with
 * TF.js (wasm backend) computing the same value-and-grad (bench/tfjs.ts), JSON in and out in
 * gradserve's request and answer format, no validation beyond what TF.js itself refuses.
 * Run by bench/http.ts in its own process, like the service.
 *   PORT=… tsx bench/tfjs-server.ts
 */
import Fastify from 'fastify';
import { tfModel, useTfWasm } from './tfjs.js';

await useTfWasm();
const app = Fastify({ bodyLimit: 64 * 1024 * 1024 });
type Body = { params: { W: number[][]; b: number[] }[]; x: number[][]; y: number[][] };
app.post('/value-and-grad', async (request) => {
  const net = request.body as Body;
  const model = tfModel(net);
  try {
    const { loss, grads } = await model.run();
    const rows = (data: Float32Array, cols: number) =>
      Array.from({ length: data.length / cols }, (_, r) => Array.from(data.subarray(r * cols, (r + 1) * cols)));
    return { loss, grads: net.params.map((p, l) => ({ W: rows(grads[2 * l]!, p.W[0]!.length), b: Array.from(grads[2 * l + 1]!) })) };
  } finally {
    model.dispose();
  }
});
app.get('/readyz', async () => ({ status: 'ready' }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
