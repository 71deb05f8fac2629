/**
 * `node dist/lab/http-get.js URL [LOCAL_ADDRESS]`: one bounded GET from
 * inside a lab namespace; prints `status <code>` and the body, or `error <code>`.
 */
import { get } from 'node:http';

const [url, localAddress] = process.argv.slice(2);
const request = get(url!, { timeout: 3000, ...(localAddress ? { localAddress } : {}) }, (response) => {
  let body = '';
  response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
  response.on('end', () => {
    process.stdout.write(`status ${response.statusCode}\n${body}`);
  });
});
request.on('timeout', () => request.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
request.on('error', (error: NodeJS.ErrnoException) => {
  process.stdout.write(`error ${error.code ?? error.message}\n`);
});
