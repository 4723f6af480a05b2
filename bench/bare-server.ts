/**
 * The ceiling for any JSON service on Fastify: one route that parses the request body
 * (fastify's JSON parser, as gradserve's) and answers a prepared body of the size
 * gradserve answers with. Run by bench/http.ts in its own process, like the service.
 *   PORT=… ANSWER_FILE=… tsx bench/bare-server.ts
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const answer = readFileSync(process.env.ANSWER_FILE!, 'utf8');
const app = Fastify({ bodyLimit: 64 * 1024 * 1024 });
app.post('/value-and-grad', async (request, reply) => {
  if (typeof request.body !== 'object') throw new Error('no body');
  reply.header('content-type', 'application/json');
  return answer;
});
app.get('/readyz', async () => ({ status: 'ready' }));
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
