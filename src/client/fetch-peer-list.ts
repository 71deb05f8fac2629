import { request } from 'node:http';
import { formatIp, type IpAddress } from '../ip/address';
import { SnakebiteError } from '../errors';

export interface FetchOptions {
  readonly server: IpAddress;
  readonly port: number;
  /** Whole-request deadline, connect to last byte, in milliseconds. */
  readonly timeoutMs: number;
  /** Largest body accepted, in bytes. */
  readonly maxBytes: number;
  readonly signal?: AbortSignal;
  /** Ask only for what changed after this revision. */
  readonly since?: number;
  /** With `since`: let the fang hold the request up to this many seconds until something changes (long poll). */
  readonly waitSeconds?: number;
}

/** Largest peer-list reply a client reads: 65,536 peers at about 1 KiB each (a bare entry takes 150 bytes). */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/** GETs `/v1/peers` from the fang through the tunnel and decodes the JSON, unvalidated. */
export function fetchPeerList(options: FetchOptions): Promise<unknown> {
  const host = formatIp(options.server);
  const query = options.since === undefined ? '' : `?since=${options.since}${options.waitSeconds ? `&wait=${options.waitSeconds}` : ''}`;
  const path = `/v1/peers${query}`;
  const where = `http://${options.server.family === 6 ? `[${host}]` : host}:${options.port}${path}`;
  const deadlineMs = options.timeoutMs + (options.since !== undefined && options.waitSeconds ? options.waitSeconds * 1000 : 0);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (error: SnakebiteError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(error);
    };
    const req = request(
      { host, port: options.port, path, method: 'GET', headers: { accept: 'application/json' }, agent: false, signal: options.signal },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status === 403) {
          return fail(new SnakebiteError('SB_SERVER_REFUSED', `${where} answered 403: the fang does not know this peer's overlay address`, "on the fang, check that this peer's AllowedIPs contain the address this interface sends from"));
        }
        if (status !== 200) {
          return fail(new SnakebiteError('SB_FETCH_FAILED', `${where} answered HTTP ${status}`, 'check the fang server log', { fangAnswered: true }));
        }
        const declared = Number(response.headers['content-length']);
        if (Number.isFinite(declared) && declared > options.maxBytes) {
          return fail(new SnakebiteError('SB_REPLY_TOO_LARGE', `${where} announced ${declared} bytes, more than the limit of ${options.maxBytes}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            return fail(new SnakebiteError('SB_REPLY_TOO_LARGE', `${where} sent more than the limit of ${options.maxBytes} bytes`));
          }
          chunks.push(chunk);
        });
        response.on('error', (error) => fail(new SnakebiteError('SB_FETCH_FAILED', `${where}: ${error.message}`)));
        response.on('end', () => {
          if (settled) return;
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch (error) {
            return fail(new SnakebiteError('SB_REPLY_MALFORMED', `${where} sent a body that is not JSON: ${(error as Error).message}`, 'is the fang running snakebite server on that port?'));
          }
          settled = true;
          clearTimeout(timer);
          resolve(body);
        });
      },
    );
    const timer = setTimeout(() => {
      fail(new SnakebiteError('SB_FETCH_TIMEOUT', `${where} did not answer within ${deadlineMs} ms`, 'check that the tunnel to the fang is up (wg show) and that snakebite server runs there'));
    }, deadlineMs);
    req.on('error', (error: NodeJS.ErrnoException) => {
      const hint =
        error.code === 'ECONNREFUSED'
          ? `nothing listens there: start snakebite server on the fang with --listen ${host}`
          : 'check that the tunnel to the fang is up (wg show) and routes the server address';
      // A refused connection came back through the tunnel from the fang's own kernel.
      fail(new SnakebiteError('SB_FETCH_FAILED', `${where}: ${error.code ?? error.message}`, hint, { cause: error, fangAnswered: error.code === 'ECONNREFUSED' }));
    });
    req.end();
  });
}
