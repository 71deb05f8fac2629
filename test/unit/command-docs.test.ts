import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { ALL_FLAGS } from '../../src/cli/options';
import { helpBlock, HELP_BY_PAGE, pageHelp, pagePath } from '../support/command-docs';

describe('docs/commands/ match --help', () => {
  for (const [name, help] of Object.entries(HELP_BY_PAGE)) {
    test(`${name}.md holds \`${name === 'snakebite' ? 'snakebite' : `snakebite ${name}`} --help\` verbatim`, () => {
      assert.ok(existsSync(pagePath(name)), `docs/commands/${name}.md is missing`);
      const page = readFileSync(pagePath(name), 'utf8');
      assert.equal(pageHelp(page), helpBlock(help), `docs/commands/${name}.md differs from --help: run npm run build && node dist/test/support/command-docs.js --write, then check the prose around it`);
    });
  }
  test('every command in snakebite --help has a page', () => {
    const commands = [...HELP_BY_PAGE.snakebite!.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]!);
    assert.deepEqual(commands.sort(), Object.keys(HELP_BY_PAGE).filter((n) => n !== 'snakebite').sort());
  });
  test('every long flag in any --help is known to the settings layer (SNAKEBITE_<FLAG>, config keys)', () => {
    const flags = new Set(Object.values(HELP_BY_PAGE).flatMap((help) => [...help.matchAll(/^\s+(?:-[a-zA-Z], )?--([a-z][a-z-]*)/gm)].map((m) => m[1]!)));
    flags.delete('version');
    assert.deepEqual([...flags].filter((flag) => !ALL_FLAGS.has(flag)), []);
  });
  test('each page documents each of its flags outside the help block too', () => {
    for (const [name, help] of Object.entries(HELP_BY_PAGE)) {
      if (name === 'snakebite') continue;
      const page = readFileSync(pagePath(name), 'utf8');
      const prose = page.replace(pageHelp(page) ?? '', '');
      const flags = [...help.matchAll(/^\s+(?:-[a-zA-Z], )?--([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((f) => f !== 'help');
      assert.deepEqual(flags.filter((flag) => !prose.includes(`--${flag}`)), [], `docs/commands/${name}.md: flags without prose`);
    }
  });
});
