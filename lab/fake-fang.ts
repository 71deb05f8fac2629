/**
 * A stand-in fang for lab tests of hostile or broken servers:
 *   node dist/lab/fake-fang.js LISTEN_IP PORT MODE [BODY_FILE]
 * MODE: `body` serves BODY_FILE to every GET; `silent` accepts and never
 * answers; `slow` sends one byte a second; `huge` streams more than any
 * client limit. Exits on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const [host, portText, mode, bodyFile] = process.argv.slice(2);
const body = bodyFile ? readFileSync(bodyFile) : Buffer.from('{}');
const server = createServer((_request, response) => {
  if (mode === 'silent') return;
  if (mode === 'slow') {
    response.writeHead(200, { 'content-type': 'application/json' });
    const timer = setInterval(() => response.write(' '), 1000);
    response.on('close', () => clearInterval(timer));
    return;
  }
  if (mode === 'huge') {
    response.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      // 75 MiB at most (past the client's 64 MiB limit): bounded even if the client never hangs up.
      while (sent < 1200 && response.write(chunk)) sent++;
      if (sent < 1200) response.once('drain', pump);
      else response.end();
    };
    pump();
    return;
  }
  response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  response.end(body);
});
server.listen({ host, port: Number(portText) }, () => process.stdout.write(`fake-fang listening ${mode}\n`));
process.on('SIGTERM', () => process.exit(0));
