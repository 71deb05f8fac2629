import assert from 'node:assert/strict';
import { test } from 'node:test';
import { promisedPathFor, type PathSide } from '../../lab/matrix';
import { renderWgQuick } from '../../lab/nat-lab';

const side = (style: PathSide['style'], router: string, nat: PathSide['nat']): PathSide => ({ style, router, nat });

test('promisedPathFor: the README promise per NAT combination and style', () => {
  const cases: { name: string; x: PathSide; y: PathSide; want: string }[] = [
    { name: 'cone-cone', x: side('unlisted', 'natA', 'cone'), y: side('unlisted', 'natB', 'cone'), want: 'direct' },
    { name: 'listed cone-cone', x: side('listed', 'natA', 'cone'), y: side('fang-only', 'natB', 'cone'), want: 'direct' },
    { name: 'cone-symmetric', x: side('listed', 'natA', 'cone'), y: side('listed', 'natB', 'symmetric'), want: 'relayed' },
    { name: 'symmetric-cone', x: side('listed', 'natA', 'symmetric'), y: side('listed', 'natB', 'cone'), want: 'relayed' },
    { name: 'symmetric-symmetric', x: side('unlisted', 'natA', 'symmetric'), y: side('unlisted', 'natB', 'symmetric'), want: 'relayed' },
    { name: 'forwarded-symmetric', x: side('fang-only', 'natA', 'forwarded'), y: side('fang-only', 'natB', 'symmetric'), want: 'direct' },
    { name: 'forwarded-cone', x: side('unlisted', 'natA', 'forwarded'), y: side('unlisted', 'natB', 'cone'), want: 'direct' },
    { name: 'same-lan', x: side('fang-only', 'natA', 'cone'), y: side('listed', 'natA', 'cone'), want: 'lan' },
    { name: 'a phone on the same LAN', x: side('listed', 'natA', 'cone'), y: side('no-client', 'natA', 'cone'), want: 'relayed' },
    { name: 'a phone behind a cone NAT', x: side('unlisted', 'natA', 'cone'), y: side('no-client', 'natB', 'cone'), want: 'relayed' },
  ];
  for (const c of cases) assert.equal(promisedPathFor(c.x, c.y), c.want, c.name);
});

test('renderWgQuick: a wg-quick file, and without Address and PostUp what wg setconf reads', () => {
  const config = {
    privateKey: 'PRIV',
    listenPort: 51820,
    address: '10.10.10.2/24',
    postUp: 'snakebite client --interface wg0 --server 10.10.10.1 --once',
    peers: [
      { publicKey: 'F', endpoint: '203.0.113.1:51820', allowedIps: ['10.10.10.1/32'], persistentKeepalive: 5 },
      { publicKey: 'B', allowedIps: ['10.10.10.3/32'], presharedKey: 'PSK', persistentKeepalive: 5 },
    ],
  };
  assert.equal(
    renderWgQuick(config),
    [
      '[Interface]', 'PrivateKey = PRIV', 'ListenPort = 51820', 'Address = 10.10.10.2/24', 'PostUp = snakebite client --interface wg0 --server 10.10.10.1 --once', '',
      '[Peer]', 'PublicKey = F', 'AllowedIPs = 10.10.10.1/32', 'Endpoint = 203.0.113.1:51820', 'PersistentKeepalive = 5', '',
      '[Peer]', 'PublicKey = B', 'AllowedIPs = 10.10.10.3/32', 'PresharedKey = PSK', 'PersistentKeepalive = 5', '',
    ].join('\n'),
  );
  const setconf = renderWgQuick({ ...config, address: undefined, postUp: undefined });
  assert.doesNotMatch(setconf, /Address|PostUp/);
});
