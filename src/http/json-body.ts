import type { FastifyInstance } from 'fastify';
import sjson from 'secure-json-parse';
import { Errors } from './errors.js';

/**
 * The API's JSON body parser: fastify's own safety (secure-json-parse refuses `__proto__`
 * and `constructor.prototype` keys, so nothing a client sends can reach Object.prototype),
 * with messages that say what is wrong instead of fastify's generic "not valid JSON".
 */
export function useJsonBodies(api: FastifyInstance): void {
  api.removeAllContentTypeParsers(); // JSON only: any other content type gets a 415
  api.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string;
    if (text.length === 0) return done(new Errors.InvalidJson('the body is empty; send a JSON object'), undefined);
    try {
      done(null, sjson.parse(text, { protoAction: 'error', constructorAction: 'error' }));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const message = /forbidden prototype/.test(reason) ? FORBIDDEN_KEY : `the body is not valid JSON: ${reason.slice(0, 200)}`;
      done(new Errors.InvalidJson(message), undefined);
    }
  });
}

const FORBIDDEN_KEY = 'the body has a "__proto__" or "constructor.prototype" key, which is refused (prototype pollution)';
