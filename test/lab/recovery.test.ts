import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEndpoint } from '../../src/ip/address';
import { waitFor } from '../../lab/exec';
import { STYLE_LABEL } from '../../lab/nat-lab';
import { connectAB, labUnavailable, withLab } from './helpers';

const skip = labUnavailable();
// A refresh interval far longer than any wait below: whatever arrives sooner was pushed.
const SLOW_POLL = ['--interval', '60s'];

test('cone-cone roaming: B\'s NAT rebinds to a new address; the change is pushed and the direct path comes back', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const { clientA } = await connectAB(lab, SLOW_POLL);

    await lab.rebind('natB');
    const rebound = Date.now();
    assert.equal(lab.host('b').publicEndpoint, '203.0.113.21:51820');
    // Measured 1.2–2.2 s (a heartbeat, a push, a probe of the old path); the refresh interval is 60 s.
    const bAtA = await lab.waitForDirect('a', 'b', { timeoutMs: 5_000, since: lab.createdAt });
    const pushedAfterMs = Date.now() - rebound;
    assert.equal(formatEndpoint(bAtA.endpoint!), '203.0.113.21:51820');
    assert.match(clientA.output.text(), /endpoint-set .*endpoint=203\.0\.113\.21:51820 .*previous=203\.0\.113\.20:51820/);

    // Traffic flows again: a reply to a ping comes back over the new path.
    const healedMs = await lab.firstReply('a', 'b', rebound, 6_000, true);
    assert.notEqual(healedMs, null, 'no reply from B within 6 s of the rebind');
    t.diagnostic(`rebind healed after ${healedMs} ms (A learned the endpoint after ${pushedAfterMs} ms)`);
    assert.match(lab.outputs(), /endpoint-moved .*endpoint=203\.0\.113\.21:51820/);
    const aAtB = await lab.peerOf('b', 'a');
    assert.equal(formatEndpoint(aAtB!.endpoint!), lab.host('a').publicEndpoint);
  });
});

test("cone-cone NAT reboot: B's NAT forgets its mappings but keeps its address; A asks B through F to send first", { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const { clientA, clientB } = await connectAB(lab);
    // B's NAT drops A's packets now, until B sends to A again; nothing changes
    // that the fang could push. A notices that it sends and hears nothing.
    await lab.flushConntrack('natB');
    const ping = await lab.pingGaps('a', lab.host('b').overlayAddress, 150, 0.1);
    t.diagnostic(`longest gap after the NAT reboot: ${ping.longestGapS.toFixed(1)} s`);
    // Measured about 4.7 s: A notices that it sends and hears nothing, then asks.
    assert.ok(ping.longestGapS <= 7, `gap ${ping.longestGapS} s: ${ping.output}`);
    assert.ok(ping.received >= 50, ping.output);
    assert.match(clientA.output.text(), /punch-requested .*peer=\S{8}/);
    assert.match(clientB.output.text(), /punch-answered/);
  });
});

test('fang restart: A and B keep talking directly while the server is down, and clients reconnect by themselves', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const started = await connectAB(lab);
    const clientA = started.clientA;
    let server = started.server;

    // 6 s of pings at 10/s, across the server stopping and coming back.
    const pinging = lab.pingGaps('a', lab.host('b').overlayAddress, 60, 0.1);
    await new Promise((r) => setTimeout(r, 500));
    await lab.stop(server);
    await new Promise((r) => setTimeout(r, 2500));
    server = await lab.startServer();
    const ping = await pinging;
    assert.ok(ping.longestGapS <= 1, `longest gap ${ping.longestGapS} s while F's server restarted: ${ping.output}`);
    assert.ok(ping.received >= 55, ping.output);

    const recovered = Date.now();
    for (let i = 0; i < 300 && !/sync-recovered/.test(clientA.output.text()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(clientA.output.text(), /sync-failed .*retryInMs=/);
    assert.match(clientA.output.text(), /sync-recovered/, `client A did not reconnect within ${Date.now() - recovered} ms`);
    assert.doesNotMatch(clientA.output.text(), /endpoint-set/);
  });
});

test('client restart: the tunnels it set keep working, and the new client changes nothing', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const { clientA: first } = await connectAB(lab);

    const pinging = lab.pingGaps('b', lab.host('a').overlayAddress, 30, 0.1);
    assert.equal(await lab.stop(first), 0);
    const second = lab.startSnakebite('a', lab.clientArgs('a', ['--log-level', 'debug']));
    const ping = await pinging;
    assert.ok(ping.longestGapS <= 1, `gap ${ping.longestGapS} s: ${ping.output}`);
    for (let i = 0; i < 200 && !/sync-done/.test(second.output.text()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(second.output.text(), /sync-done .*changes=0/);
  });
});

test('interface down and up on A (link down/up, then wg-quick down/up): the client resumes and the direct path returns', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const { clientA } = await connectAB(lab);
    const pingWorks = () =>
      waitFor('a ping from A to B', async () => ((await lab.ping('a', lab.host('b').overlayAddress, 1)).received ? true : undefined), { timeoutMs: 20_000, intervalMs: 0 });

    // The link goes down and up: WireGuard keeps its peers and sessions.
    await lab.setInterfaceUp('a', false);
    await new Promise((r) => setTimeout(r, 1500));
    await lab.setInterfaceUp('a', true);
    await pingWorks();

    // wg-quick down/up: the peer Snakebite added is gone until the client adds it again.
    const restarted = Date.now();
    await lab.restartWireGuard('a', 1500);
    assert.equal(await lab.peerOf('a', 'b'), undefined, 'the restarted interface has only its configured peers');
    // The daemon checks the interface every 2 s, then adds B and punches.
    await lab.waitForDirect('a', 'b', { timeoutMs: 6_000, since: restarted });
    await pingWorks();
    assert.match(clientA.output.text(), /peer-added .*reason="new peer listed by the fang[^]*peer-added/);
    assert.equal(clientA.child.exitCode, null, 'the client daemon is still running');
  });
});

test('a peer leaves the fang: the client that added it removes it, also after the client restarted', { skip, timeout: 120_000 }, async (t) => {
  await withLab(t, {}, async (lab) => {
    const { clientA } = await connectAB(lab);
    // A's client restarts: it must still know that it added B.
    assert.equal(await lab.stop(clientA), 0);
    const again = lab.startSnakebite('a', lab.clientArgs('a'));
    await waitFor('the new client to sync', async () => (/client-started/.test(again.output.text()) ? true : undefined), { timeoutMs: 10_000 });
    await lab.inNs(lab.host('f').ns, ['wg', 'set', lab.host('f').wgInterface, 'peer', lab.host('b').keys.publicKey, 'remove']);
    await waitFor('A to remove B', async () => ((await lab.peerOf('a', 'b')) === undefined ? true : undefined), { timeoutMs: 15_000, intervalMs: 100 });
    assert.match(again.output.text(), /peer-removed .*reason="the fang no longer lists it, and this client added it"/);
    assert.ok(await lab.peerOf('a', 'f'), 'the fang peer stays');
  });
});

for (const style of ['unlisted', 'listed'] as const) {
  test(`fang restart while B's NAT moves it (${STYLE_LABEL[style]}): A and B talk again soon after the server is back`, { skip, timeout: 120_000 }, async (t) => {
    await withLab(t, { style }, async (lab) => {
      const { server } = await connectAB(lab);
      await lab.stop(server);
      await lab.rebind('natB');
      // Long enough for the daemons' retries to back off, and for B's keepalive to show F its new endpoint.
      await new Promise((r) => setTimeout(r, 6_000));
      await lab.startServer();
      const back = Date.now();
      // Issue 7: the server coming back is noticed within 1 s; then a push and a
      // probe of the old path, as for a rebind (measured 1.2–2.2 s). The seed's
      // shell client needed 3.8 s.
      const healedMs = await lab.firstReply('a', 'b', back, 3_500, true);
      t.diagnostic(`healed ${healedMs} ms after the server was back`);
      assert.notEqual(healedMs, null, 'A and B did not talk within 3.5 s of the server coming back');
      // The session outlives the move (no new handshake needed): B's entry at A now has B's new endpoint.
      await lab.waitForDirect('a', 'b', { timeoutMs: 2_000, since: lab.createdAt });
    });
  });
}
