/**
 * `npm run demo`: builds the lab (F, cone NATs A and B), runs the real
 * `snakebite server` on F and `snakebite client` on A and B, and reports the
 * direct connection. Tears everything down at the end, also on Ctrl-C.
 */
import { formatEndpoint } from '../src/ip/address';
import { NatLab, snakebiteArgv } from './nat-lab';

async function main(): Promise<number> {
  const verbose = process.argv.includes('--verbose');
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say('snakebite demo: building the lab (F on 203.0.113.1, A behind NAT 203.0.113.10, B behind NAT 203.0.113.20)...');
  const lab = await NatLab.create({ log: verbose ? (line) => say(`  ${line}`) : undefined });
  try {
    const [a, b, f] = [lab.host('a'), lab.host('b'), lab.host('f')];
    say(`lab ${lab.id} is up; A and B each have a handshake with F, and no endpoint for each other.`);
    await lab.startServer();
    say(`snakebite server runs on F at ${f.overlayAddress} (inside the tunnel).`);
    const started = Date.now();
    lab.startSnakebite('a', lab.clientArgs('a'));
    lab.startSnakebite('b', lab.clientArgs('b'));
    say('snakebite client runs on A and B (daemons).');
    const direct = await lab.waitForDirect('a', 'b', { timeoutMs: 20_000, since: started });
    await lab.waitForDirect('b', 'a', { timeoutMs: 20_000, since: started });
    const connectMs = Date.now() - started;
    const fBefore = await lab.dump('f');
    const ping = await lab.ping('a', b.overlayAddress, 20, { intervalS: 0.05, size: 1000 });
    const fAfter = await lab.dump('f');
    const carried = (name: 'a' | 'b') => {
      const key = lab.host(name).keys.publicKey;
      const before = fBefore.peers.find((p) => p.publicKey === key)!;
      const after = fAfter.peers.find((p) => p.publicKey === key)!;
      return after.rxBytes - before.rxBytes + after.txBytes - before.txBytes;
    };
    const age = Math.max(0, Math.floor(Date.now() / 1000) - direct.latestHandshake);
    say('');
    say('Report');
    say(`  B's endpoint as A sees it:   ${formatEndpoint(direct.endpoint!)}   (B's NAT public address: ${b.publicEndpoint})`);
    say(`  A <-> B handshake:           ${age}s ago, ${connectMs} ms after the clients started`);
    say(`  ping A -> B over the tunnel: ${ping.received}/${ping.sent} replies (1000-byte packets, ${b.overlayAddress})`);
    say(`  bytes F moved for A and B during the ping: ${carried('a') + carried('b')} (heartbeats and peer-list traffic; the ping itself was ${ping.sent * 2 * 1028})`);
    const status = await lab.inNs(a.ns, [...snakebiteArgv(), 'status', '--interface', a.wgInterface]).then((r) => r.stdout, (e: Error) => e.message);
    say('');
    say(`snakebite status on A:\n${status.replace(/^/gm, '  ').trimEnd()}`);
    const ok = direct.endpoint && formatEndpoint(direct.endpoint) === b.publicEndpoint && ping.received > 0;
    say(ok ? '\nA and B talk directly; F carried none of their traffic.' : `\nthe direct path did not come up:\n${lab.outputs()}`);
    return ok ? 0 : 1;
  } finally {
    say('tearing the lab down...');
    lab.teardown();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
