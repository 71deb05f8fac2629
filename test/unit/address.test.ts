import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import {
  endpointEquals,
  firstHost,
  formatEndpoint,
  formatIp,
  formatPrefix,
  ipEquals,
  longestMatch,
  parseEndpoint,
  parseIp,
  parsePrefix,
  prefixContainsIp,
  prefixCovers,
  unmapIpv4,
  type IpAddress,
} from '../../src/ip/address';
import { endpoint, ip, prefix, seededRandom } from '../support/fakes';

describe('parseIp / formatIp, IPv4', () => {
  const good = [
    { name: 'zero', input: '0.0.0.0', want: 0n },
    { name: 'all ones', input: '255.255.255.255', want: 0xffffffffn },
    { name: 'documentation', input: '192.0.2.1', want: 0xc0000201n },
    { name: 'private', input: '10.10.10.1', want: 0x0a0a0a01n },
    { name: 'loopback', input: '127.0.0.1', want: 0x7f000001n },
  ];
  for (const { name, input, want } of good) {
    test(`parses ${name}: ${input}`, () => {
      assert.deepEqual(parseIp(input), { family: 4, value: want });
      assert.equal(formatIp({ family: 4, value: want }), input);
    });
  }

  const bad = [
    { name: 'leading zero', input: '01.2.3.4' },
    { name: 'leading zero in last octet', input: '1.2.3.04' },
    { name: 'octal-looking', input: '010.0.0.1' },
    { name: '256', input: '256.0.0.1' },
    { name: '999', input: '1.2.3.999' },
    { name: 'four digits', input: '1.2.3.1000' },
    { name: 'three parts', input: '1.2.3' },
    { name: 'five parts', input: '1.2.3.4.5' },
    { name: 'empty part', input: '1..3.4' },
    { name: 'trailing dot', input: '1.2.3.4.' },
    { name: 'negative', input: '1.2.3.-1' },
    { name: 'plus sign', input: '+1.2.3.4' },
    { name: 'hex octet', input: '1.2.3.0x1' },
    { name: 'leading space', input: ' 1.2.3.4' },
    { name: 'trailing space', input: '1.2.3.4 ' },
    { name: 'zone on IPv4', input: '1.2.3.4%eth0' },
    { name: 'one number', input: '16909060' },
    { name: 'empty', input: '' },
    { name: 'name', input: 'localhost' },
  ];
  for (const { name, input } of bad) {
    test(`refuses ${name}: ${JSON.stringify(input)}`, () => {
      assert.equal(parseIp(input), undefined);
    });
  }

  test('refuses non-strings and over-long text without throwing', () => {
    assert.equal(parseIp(undefined as unknown as string), undefined);
    assert.equal(parseIp(42 as unknown as string), undefined);
    assert.equal(parseIp(`1.2.3.4${' '.repeat(100)}`), undefined);
  });
});

describe('parseIp / formatIp, IPv6 (RFC 5952)', () => {
  const canonical = [
    { name: 'upper case becomes lower case', input: '2001:DB8::1', want: '2001:db8::1' },
    { name: 'full form is compressed', input: '2001:0db8:0000:0000:0000:0000:0000:0001', want: '2001:db8::1' },
    { name: 'leading zeros of a group dropped', input: '2001:db8:00ff::0001', want: '2001:db8:ff::1' },
    { name: 'first run on a tie', input: '2001:db8:0:0:1:0:0:1', want: '2001:db8::1:0:0:1' },
    { name: 'longest run wins', input: '2001:0:0:1:0:0:0:1', want: '2001:0:0:1::1' },
    { name: 'a single zero group is not compressed', input: '2001:db8:0:1:1:1:1:1', want: '2001:db8:0:1:1:1:1:1' },
    { name: 'unspecified', input: '::', want: '::' },
    { name: 'loopback', input: '::1', want: '::1' },
    { name: 'trailing run', input: '1::', want: '1::' },
    { name: '"::" standing for one group', input: '1:2:3:4:5:6:7::', want: '1:2:3:4:5:6:7:0' },
    { name: 'leading single zero', input: '::2:3:4:5:6:7:8', want: '0:2:3:4:5:6:7:8' },
    { name: 'all groups', input: 'ABCD:EF01:2345:6789:ABCD:EF01:2345:6789', want: 'abcd:ef01:2345:6789:abcd:ef01:2345:6789' },
    { name: 'zone kept', input: 'fe80::1%eth0', want: 'fe80::1%eth0' },
    { name: 'zone with dots and dashes', input: 'fe80::1%wg-0.1', want: 'fe80::1%wg-0.1' },
    { name: 'IPv4-mapped keeps the dotted tail', input: '::ffff:192.0.2.1', want: '::ffff:192.0.2.1' },
    { name: 'IPv4-mapped written in hex', input: '::ffff:c000:201', want: '::ffff:192.0.2.1' },
    { name: 'IPv4-mapped, full form', input: '0:0:0:0:0:ffff:10.0.0.1', want: '::ffff:10.0.0.1' },
    { name: 'dotted tail outside ::ffff:0:0/96 is printed in hex', input: '64:ff9b::192.0.2.33', want: '64:ff9b::c000:221' },
    { name: 'dotted tail after six groups', input: '1:2:3:4:5:6:1.2.3.4', want: '1:2:3:4:5:6:102:304' },
  ];
  for (const { name, input, want } of canonical) {
    test(`${name}: ${input} -> ${want}`, () => {
      const parsed = parseIp(input);
      assert.ok(parsed, `${input} should parse`);
      assert.equal(parsed.family, 6);
      assert.equal(formatIp(parsed), want);
      assert.deepEqual(parseIp(want), parsed, 'the canonical form parses back to the same address');
    });
  }

  test('zone is kept as a separate field', () => {
    assert.deepEqual(parseIp('fe80::1%eth0'), { family: 6, value: 0xfe800000000000000000000000000001n, zone: 'eth0' });
    assert.equal(parseIp('fe80::1')?.zone, undefined);
  });

  const bad = [
    { name: 'triple colon', input: ':::' },
    { name: 'triple colon inside', input: '1:::2' },
    { name: 'two "::"', input: '1::2::3' },
    { name: 'leading single colon', input: ':1:2:3:4:5:6:7' },
    { name: 'trailing single colon', input: '1:2:3:4:5:6:7:' },
    { name: 'nine groups', input: '1:2:3:4:5:6:7:8:9' },
    { name: 'eight groups and "::"', input: '1:2:3:4:5:6:7:8::' },
    { name: 'seven groups', input: '1:2:3:4:5:6:7' },
    { name: 'five hex digits', input: '12345::1' },
    { name: 'not hex', input: 'g::1' },
    { name: 'lone colon', input: ':' },
    { name: 'brackets', input: '[::1]' },
    { name: 'empty zone', input: '::1%' },
    { name: 'zone with a space', input: '::1%bad zone' },
    { name: 'zone too long', input: `::1%${'a'.repeat(16)}` },
    { name: 'zone with a slash', input: 'fe80::1%eth0/64' },
    { name: 'bad dotted tail', input: '::ffff:256.0.0.1' },
    { name: 'short dotted tail', input: '::ffff:1.2.3' },
    { name: 'dotted tail making nine groups', input: '1:2:3:4:5:6:7:1.2.3.4' },
    { name: 'dotted tail not last', input: '::1.2.3.4:5' },
    { name: 'dotted tail with leading zero', input: '::ffff:01.2.3.4' },
    { name: 'space inside', input: '2001:db8:: 1' },
  ];
  for (const { name, input } of bad) {
    test(`refuses ${name}: ${JSON.stringify(input)}`, () => {
      assert.equal(parseIp(input), undefined);
    });
  }

  test('random addresses round-trip and match the WHATWG URL serializer (also RFC 5952)', () => {
    const random = seededRandom(5952);
    for (let i = 0; i < 500; i++) {
      let value = 0n;
      for (let g = 0; g < 8; g++) {
        // Zero groups often, so runs of every length and position occur.
        const group = random() < 0.5 ? 0 : Math.floor(random() * 0x10000);
        value = (value << 16n) | BigInt(group);
      }
      const address: IpAddress = { family: 6, value };
      const text = formatIp(address);
      assert.deepEqual(parseIp(text), address, text);
      assert.equal(formatIp(parseIp(text)!), text);
      if (value >> 32n !== 0xffffn) assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
    }
  });

  test('random IPv4 addresses round-trip', () => {
    const random = seededRandom(4);
    for (let i = 0; i < 500; i++) {
      const value = BigInt(Math.floor(random() * 2 ** 32));
      const text = formatIp({ family: 4, value });
      assert.deepEqual(parseIp(text), { family: 4, value });
      assert.equal(isIP(text), 4);
    }
  });

  test('random strings: whatever parses is an address to node:net too', () => {
    const random = seededRandom(77);
    const alphabet = '0123456789abcdef:.';
    let parsed = 0;
    for (let i = 0; i < 5000; i++) {
      const length = 1 + Math.floor(random() * 20);
      let text = '';
      for (let j = 0; j < length; j++) text += alphabet[Math.floor(random() * alphabet.length)];
      const address = parseIp(text);
      if (address) {
        parsed++;
        assert.equal(isIP(text), address.family, text);
      }
    }
    assert.ok(parsed > 0, 'the generator should produce some valid addresses');
  });
});

describe('unmapIpv4 and ipEquals', () => {
  test('unmaps ::ffff:a.b.c.d only', () => {
    assert.deepEqual(unmapIpv4(ip('::ffff:192.0.2.1')), ip('192.0.2.1'));
    assert.deepEqual(unmapIpv4(ip('::192.0.2.1')), ip('::192.0.2.1'));
    assert.deepEqual(unmapIpv4(ip('64:ff9b::192.0.2.1')), ip('64:ff9b::192.0.2.1'));
    assert.deepEqual(unmapIpv4(ip('192.0.2.1')), ip('192.0.2.1'));
  });

  const rows = [
    { name: 'same IPv4', a: '10.0.0.1', b: '10.0.0.1', want: true },
    { name: 'different IPv4', a: '10.0.0.1', b: '10.0.0.2', want: false },
    { name: 'same IPv6 in two spellings', a: '2001:db8::1', b: '2001:DB8:0::0:1', want: true },
    { name: 'mapped is not IPv4 (families differ)', a: '::ffff:10.0.0.1', b: '10.0.0.1', want: false },
    { name: '::a.b.c.d is not a.b.c.d', a: '::10.0.0.1', b: '10.0.0.1', want: false },
    { name: 'zones differ', a: 'fe80::1%eth0', b: 'fe80::1%eth1', want: false },
    { name: 'zone against none', a: 'fe80::1%eth0', b: 'fe80::1', want: false },
  ];
  for (const { name, a, b, want } of rows) {
    test(`ipEquals: ${name}`, () => {
      assert.equal(ipEquals(ip(a), ip(b)), want);
      assert.equal(ipEquals(ip(b), ip(a)), want);
    });
  }
});

describe('parsePrefix / formatPrefix', () => {
  const good = [
    { name: 'network', input: '10.10.10.0/24', want: '10.10.10.0/24' },
    { name: 'host bits cleared', input: '10.10.10.7/24', want: '10.10.10.0/24' },
    { name: 'host bits cleared at /1', input: '200.1.2.3/1', want: '128.0.0.0/1' },
    { name: 'bare IPv4 is /32', input: '10.0.0.1', want: '10.0.0.1/32' },
    { name: '/32', input: '10.0.0.1/32', want: '10.0.0.1/32' },
    { name: '/0', input: '0.0.0.0/0', want: '0.0.0.0/0' },
    { name: '/0 from a host', input: '1.2.3.4/0', want: '0.0.0.0/0' },
    { name: 'IPv6 host bits cleared', input: '2001:db8::1/64', want: '2001:db8::/64' },
    { name: 'IPv6 /0', input: '::/0', want: '::/0' },
    { name: 'bare IPv6 is /128', input: 'fd00::1', want: 'fd00::1/128' },
    { name: 'IPv6 /128', input: 'fd00::1/128', want: 'fd00::1/128' },
    { name: 'odd length', input: 'fd00:ffff::/17', want: 'fd00:8000::/17' },
    { name: 'mapped range', input: '::ffff:0.0.0.0/96', want: '::ffff:0.0.0.0/96' },
  ];
  for (const { name, input, want } of good) {
    test(`${name}: ${input} -> ${want}`, () => {
      const parsed = parsePrefix(input);
      assert.ok(parsed);
      assert.equal(formatPrefix(parsed), want);
      assert.deepEqual(parsePrefix(want), parsed);
    });
  }

  const bad = [
    { name: '/33', input: '10.0.0.0/33' },
    { name: '/129', input: '::/129' },
    { name: 'empty length', input: '10.0.0.0/' },
    { name: 'leading zero length', input: '10.0.0.0/08' },
    { name: 'negative length', input: '10.0.0.0/-1' },
    { name: 'huge length', input: '10.0.0.0/1000' },
    { name: 'two slashes', input: '10.0.0.0/24/1' },
    { name: 'space in length', input: '10.0.0.0/ 24' },
    { name: 'zone', input: 'fe80::1%eth0/64' },
    { name: 'bare zone address', input: 'fe80::1%eth0' },
    { name: 'bad address', input: '300.0.0.0/8' },
    { name: 'empty', input: '' },
    { name: 'slash only', input: '/24' },
  ];
  for (const { name, input } of bad) {
    test(`refuses ${name}: ${JSON.stringify(input)}`, () => {
      assert.equal(parsePrefix(input), undefined);
    });
  }

  test('refuses non-strings', () => {
    assert.equal(parsePrefix(null as unknown as string), undefined);
    assert.equal(parsePrefix(24 as unknown as string), undefined);
  });
});

describe('prefixCovers', () => {
  const rows = [
    { name: 'equal', outer: '10.10.10.0/24', inner: '10.10.10.0/24', want: true },
    { name: 'host inside', outer: '10.10.10.0/24', inner: '10.10.10.5/32', want: true },
    { name: 'smaller range inside', outer: '10.0.0.0/8', inner: '10.10.0.0/16', want: true },
    { name: 'wider is not inside narrower', outer: '10.10.10.0/24', inner: '10.10.0.0/16', want: false },
    { name: 'disjoint', outer: '10.10.10.0/24', inner: '10.10.11.0/24', want: false },
    { name: '/0 covers everything of its family', outer: '0.0.0.0/0', inner: '203.0.113.0/24', want: true },
    { name: 'IPv4 /0 does not cover IPv6', outer: '0.0.0.0/0', inner: 'fd00::/64', want: false },
    { name: 'IPv6 /0 does not cover IPv4', outer: '::/0', inner: '10.0.0.0/8', want: false },
    { name: 'IPv6 inside', outer: 'fd00::/64', inner: 'fd00::5/128', want: true },
    { name: 'IPv6 outside', outer: 'fd00::/64', inner: 'fd00:0:0:1::5/128', want: false },
  ];
  for (const { name, outer, inner, want } of rows) {
    test(name, () => assert.equal(prefixCovers(prefix(outer), prefix(inner)), want));
  }
});

describe('prefixContainsIp', () => {
  const rows = [
    { name: 'inside', range: '10.10.10.0/24', address: '10.10.10.200', want: true },
    { name: 'network address', range: '10.10.10.0/24', address: '10.10.10.0', want: true },
    { name: 'outside', range: '10.10.10.0/24', address: '10.10.11.1', want: false },
    { name: '/32 itself', range: '127.0.0.1/32', address: '127.0.0.1', want: true },
    { name: '/32 neighbour', range: '127.0.0.1/32', address: '127.0.0.2', want: false },
    { name: '/0', range: '0.0.0.0/0', address: '198.51.100.1', want: true },
    { name: 'IPv4-mapped source in an IPv4 range', range: '10.10.10.0/24', address: '::ffff:10.10.10.2', want: true },
    { name: 'IPv6 address in IPv4 range', range: '0.0.0.0/0', address: '::1', want: false },
    { name: 'IPv4 address in IPv6 range', range: '::/0', address: '10.0.0.1', want: false },
    { name: 'IPv6 inside', range: 'fd00::/64', address: 'fd00::abcd', want: true },
    { name: 'IPv6 with zone inside', range: 'fe80::/10', address: 'fe80::1%eth0', want: true },
  ];
  for (const { name, range, address, want } of rows) {
    test(name, () => assert.equal(prefixContainsIp(prefix(range), ip(address)), want));
  }
});

describe('parseEndpoint / formatEndpoint', () => {
  const good = [
    { name: 'IPv4', input: '192.0.2.1:51820', want: '192.0.2.1:51820' },
    { name: 'IPv4 lowest port', input: '192.0.2.1:1', want: '192.0.2.1:1' },
    { name: 'IPv4 highest port', input: '192.0.2.1:65535', want: '192.0.2.1:65535' },
    { name: 'IPv6 in brackets', input: '[2001:db8::1]:51820', want: '[2001:db8::1]:51820' },
    { name: 'IPv6 spelled long', input: '[2001:0DB8:0:0:0:0:0:1]:51820', want: '[2001:db8::1]:51820' },
    { name: 'IPv6 with zone', input: '[fe80::1%eth0]:51820', want: '[fe80::1%eth0]:51820' },
    { name: 'IPv4-mapped', input: '[::ffff:192.0.2.1]:51820', want: '[::ffff:192.0.2.1]:51820' },
  ];
  for (const { name, input, want } of good) {
    test(`${name}: ${input}`, () => {
      const parsed = parseEndpoint(input);
      assert.ok(parsed);
      assert.equal(formatEndpoint(parsed), want);
      assert.deepEqual(parseEndpoint(want), parsed);
    });
  }

  test('fields', () => {
    assert.deepEqual(parseEndpoint('[2001:db8::1]:51820'), { address: { family: 6, value: 0x20010db8000000000000000000000001n }, port: 51820 });
    assert.deepEqual(parseEndpoint('192.0.2.1:51820'), { address: { family: 4, value: 0xc0000201n }, port: 51820 });
  });

  const bad = [
    { name: 'port 0', input: '192.0.2.1:0' },
    { name: 'port 65536', input: '192.0.2.1:65536' },
    { name: 'port 99999', input: '192.0.2.1:99999' },
    { name: 'port with leading zero', input: '192.0.2.1:080' },
    { name: 'signed port', input: '192.0.2.1:+80' },
    { name: 'hex port', input: '192.0.2.1:0x50' },
    { name: 'no port', input: '192.0.2.1' },
    { name: 'empty port', input: '192.0.2.1:' },
    { name: 'IPv6 without brackets', input: '2001:db8::1:51820' },
    { name: 'IPv6 in brackets without port', input: '[2001:db8::1]' },
    { name: 'IPv6 in brackets, empty port', input: '[2001:db8::1]:' },
    { name: 'IPv6 port 0', input: '[2001:db8::1]:0' },
    { name: 'IPv4 in brackets', input: '[192.0.2.1]:80' },
    { name: 'unclosed bracket', input: '[2001:db8::1:80' },
    { name: 'host name', input: 'example.com:80' },
    { name: 'bad IPv4', input: '300.1.1.1:80' },
    { name: 'leading space', input: ' 192.0.2.1:80' },
    { name: 'trailing space', input: '192.0.2.1:80 ' },
    { name: 'empty', input: '' },
    { name: 'over 80 characters', input: `[fe80::1%${'a'.repeat(15)}]:${'1'.repeat(70)}` },
  ];
  for (const { name, input } of bad) {
    test(`refuses ${name}: ${JSON.stringify(input)}`, () => assert.equal(parseEndpoint(input), undefined));
  }

  test('refuses non-strings', () => {
    assert.equal(parseEndpoint(null as unknown as string), undefined);
    assert.equal(parseEndpoint({} as unknown as string), undefined);
  });
});

describe('endpointEquals', () => {
  const rows = [
    { name: 'both null', a: null, b: null, want: true },
    { name: 'null and one', a: null, b: '192.0.2.1:51820', want: false },
    { name: 'same', a: '192.0.2.1:51820', b: '192.0.2.1:51820', want: true },
    { name: 'port differs', a: '192.0.2.1:51820', b: '192.0.2.1:51821', want: false },
    { name: 'address differs', a: '192.0.2.1:51820', b: '192.0.2.2:51820', want: false },
    { name: 'IPv6 spellings', a: '[2001:db8::1]:51820', b: '[2001:DB8:0::1]:51820', want: true },
    { name: 'IPv4-mapped equals IPv4', a: '[::ffff:192.0.2.1]:51820', b: '192.0.2.1:51820', want: true },
    { name: 'zone matters', a: '[fe80::1%eth0]:51820', b: '[fe80::1%eth1]:51820', want: false },
  ];
  for (const { name, a, b, want } of rows) {
    test(name, () => {
      const ea = a === null ? null : endpoint(a);
      const eb = b === null ? null : endpoint(b);
      assert.equal(endpointEquals(ea, eb), want);
      assert.equal(endpointEquals(eb, ea), want);
    });
  }
});

describe('firstHost', () => {
  const rows = [
    { input: '10.10.10.0/24', want: '10.10.10.1' },
    { input: '10.10.10.5/32', want: '10.10.10.5' },
    { input: '10.10.10.4/31', want: '10.10.10.4' },
    { input: '10.10.10.4/30', want: '10.10.10.5' },
    { input: '0.0.0.0/0', want: '0.0.0.1' },
    { input: 'fd00::/64', want: 'fd00::1' },
    { input: 'fd00::5/128', want: 'fd00::5' },
    { input: 'fd00::4/127', want: 'fd00::4' },
  ];
  for (const { input, want } of rows) {
    test(`${input} -> ${want}`, () => assert.equal(formatIp(firstHost(prefix(input))), want));
  }
});

describe('longestMatch', () => {
  const table = ['10.0.0.0/8', '10.10.10.0/24', '0.0.0.0/0', '10.10.0.0/16', 'fd00::/64', 'fd00::5/128'].map(prefix);
  const rows = [
    { name: 'most specific IPv4', address: '10.10.10.5', want: '10.10.10.0/24' },
    { name: 'middle', address: '10.10.99.1', want: '10.10.0.0/16' },
    { name: 'only the /8', address: '10.20.0.1', want: '10.0.0.0/8' },
    { name: 'default route', address: '8.8.8.8', want: '0.0.0.0/0' },
    { name: 'IPv6 host route', address: 'fd00::5', want: 'fd00::5/128' },
    { name: 'IPv6 range', address: 'fd00::6', want: 'fd00::/64' },
    { name: 'IPv6 outside', address: '2001:db8::1', want: undefined },
    { name: 'IPv4-mapped', address: '::ffff:10.10.10.5', want: '10.10.10.0/24' },
  ];
  for (const { name, address, want } of rows) {
    test(name, () => {
      const match = longestMatch(table, ip(address));
      assert.equal(match && formatPrefix(match), want);
    });
  }

  test('no prefixes, no match', () => assert.equal(longestMatch([], ip('10.0.0.1')), undefined));
  test('without a default route an outside address matches nothing', () => {
    assert.equal(longestMatch(['10.0.0.0/8'].map(prefix), ip('192.0.2.1')), undefined);
  });
});
