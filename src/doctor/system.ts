/**
 * The machine facts doctor reads besides the WireGuard interface: the
 * wg-quick config file, the firewall (`iptables-save`), and whether an HTTP
 * server answers. The one place outside src/wireguard/ that spawns a process.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { formatIp, type IpAddress } from '../ip/address';
import type { ConfigFacts, FirewallFacts } from './checks';
import { parseWgConfig } from './wg-config';

export function readWgConfig(path: string): ConfigFacts {
  try {
    return parseWgConfig(readFileSync(path, 'utf8'), path);
  } catch (error) {
    return { path, unreadable: (error as NodeJS.ErrnoException).code ?? (error as Error).message };
  }
}

/** The filter table as `iptables-save` prints it (IPv4). */
export function readFirewall(): Promise<FirewallFacts> {
  return new Promise((resolve) => {
    execFile('iptables-save', ['-t', 'filter'], { env: { ...process.env, LC_ALL: 'C' }, timeout: 5000, maxBuffer: 8 << 20 }, (error, stdout, stderr) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        resolve({ unavailable: code === 'ENOENT' ? 'iptables-save is not installed' : stderr.trim() || error.message });
      } else {
        resolve({ rules: stdout });
      }
    });
  });
}

/**
 * GETs `path` from address:port and resolves with the HTTP status; status 0
 * when the server took the connection and closed it unanswered (the fang does
 * that to sources that are no peer, such as its own address); else the error.
 */
export function httpStatus(address: IpAddress, port: number, path: string, timeoutMs: number): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    let connected = false;
    const req = request({ host: formatIp(address), port, path, method: 'GET', agent: false, timeout: timeoutMs }, (response) => {
      response.resume();
      resolve({ status: response.statusCode ?? 0 });
    });
    req.on('socket', (socket) => socket.on('connect', () => (connected = true)));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(connected && error.code !== undefined && ['ECONNRESET', 'EPIPE'].includes(error.code) ? { status: 0 } : { error: error.code ?? error.message }));
    req.end();
  });
}
