import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { TrustedProxies } from '../common/trusted-proxies.js';

/** Probes and socket.io's polling requests would drown the log; connections are logged by the adapter. */
const QUIET = /^\/(health|metrics|socket\.io)(\/|\?|$)/;

/**
 * One log line per HTTP request with a request id (the caller's X-Request-Id, or a new one,
 * echoed in the response). Only the path is logged: query strings can carry access tokens. The
 * address is the client's as TRUSTED_PROXIES tells it (X-Forwarded-For from a trusted balancer),
 * not the balancer's.
 */
export function httpLogger(logger: Logger, proxies: Pick<TrustedProxies, 'clientOf'>) {
  return pinoHttp({
    logger,
    genReqId: (req, res) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    autoLogging: { ignore: (req) => QUIET.test(req.url ?? '') },
    serializers: {
      req: (req: IncomingMessage & { id?: string; raw?: IncomingMessage }) => ({
        id: req.id,
        method: req.method,
        path: (req.url ?? '').split('?')[0],
        remoteAddress: proxies.clientOf(req.raw ?? req),
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
}
