/**
 * Attack: a hostile fang (or peer) sends JSON nested a million levels deep.
 * Every place a value can sit must give the malformed-reply error (or drop the
 * one entry), never a RangeError from a recursive helper.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isSnakebiteError } from '../../src/errors';
import { parsePeerList, parsePeerReport } from '../../src/peer-list/parse';
import { key } from '../support/fakes';

const DEPTH = 20_000;
const deep = (open: string, close: string) => open.repeat(DEPTH) + close.repeat(DEPTH);
const ARRAY = deep('[', ']');


function list(patch: string): string {
  const peer = `{"publicKey":"${key(2)}","endpoint":"203.0.113.2:51820","allowedIps":["10.10.10.2/32"],"latestHandshake":0}`;
  return `{"version":1,"fang":{"publicKey":"${key(1)}"},"you":{"publicKey":"${key(3)}","endpoint":null},"peers":[${peer}]${patch}}`;
}

describe('attack: deeply nested JSON', () => {
  const nested = [
    { name: 'array', value: ARRAY },
    { name: 'object', value: `${'{"a":'.repeat(DEPTH)}1${'}'.repeat(DEPTH)}` },
  ];

  const places: { name: string; text: (v: string) => string; entryOnly?: boolean }[] = [
    { name: 'the whole reply', text: (v) => v },
    { name: 'version', text: (v) => list('').replace('"version":1', `"version":${v}`) },
    { name: 'fang', text: (v) => list('').replace(`"fang":{"publicKey":"${key(1)}"}`, `"fang":${v}`) },
    { name: 'fang.publicKey', text: (v) => list('').replace(`"fang":{"publicKey":"${key(1)}"}`, `"fang":{"publicKey":${v}}`) },
    { name: 'you.endpoint', text: (v) => list('').replace('"endpoint":null', `"endpoint":${v}`) },
    { name: 'you.seenBy', text: (v) => list('').replace('"endpoint":null', `"endpoint":null,"seenBy":${v}`) },
    { name: 'peers', text: (v) => list('').replace(/"peers":\[.*\]\}$/, `"peers":{"x":${v}}}`) },
    { name: 'revision', text: (v) => list(`,"revision":${v}`) },
    { name: 'peers[0] (the entry is dropped)', text: (v) => list('').replace(/"peers":\[.*\]\}$/, `"peers":[${v}]}`), entryOnly: true },
    { name: 'peers[0].endpoint (the entry is dropped)', text: (v) => list('').replace('"endpoint":"203.0.113.2:51820"', `"endpoint":${v}`), entryOnly: true },
    { name: 'peers[0].allowedIps[0] (the entry is dropped)', text: (v) => list('').replace('["10.10.10.2/32"]', `[${v}]`), entryOnly: true },
    { name: 'peers[0].candidates (the entry is dropped)', text: (v) => list('').replace('"latestHandshake":0', `"latestHandshake":0,"candidates":${v}`), entryOnly: true },
  ];
  for (const shape of nested) {
    for (const place of places) {
      test(`${shape.name} nested ${DEPTH} deep in ${place.name}`, () => {
        const body: unknown = JSON.parse(place.text(shape.value));
        let outcome: string;
        try {
          const { list: parsed, rejected } = parsePeerList(body);
          assert.ok(rejected.every((r) => r.reason.length < 200));
          outcome = parsed.peers.length === 0 && rejected.length === 1 ? 'entry-dropped' : 'accepted';
        } catch (error) {
          assert.ok(isSnakebiteError(error) && error.message.length < 300, `not the malformed-reply error: ${String(error)}`);
          outcome = error.code;
        }
        assert.equal(outcome, place.entryOnly ? 'entry-dropped' : 'SB_REPLY_MALFORMED');
      });
    }
    test(`${shape.name} nested ${DEPTH} deep in a report`, () => {
      for (const text of [shape.value, `{"listenPort":${shape.value}}`, `{"listenPort":1,"seen":[${shape.value}]}`, `{"listenPort":1,"punchRequests":[{"publicKey":"${key(1)}","at":${shape.value}}]}`]) {
        assert.throws(
          () => parsePeerReport(JSON.parse(text)),
          (error: unknown) => isSnakebiteError(error) && error.code === 'SB_REPLY_MALFORMED',
        );
      }
    });
  }
});
