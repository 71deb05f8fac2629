/**
 * docs/commands/<command>.md each hold the command's --help output verbatim
 * between two markers; test/unit/command-docs.test.ts fails when they differ.
 * After changing a help text: `npm run build && node dist/test/support/command-docs.js --write`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CLIENT_HELP } from '../../src/cli/client';
import { DOCTOR_HELP } from '../../src/cli/doctor';
import { MAIN_HELP } from '../../src/cli/main';
import { SERVER_HELP } from '../../src/cli/server';
import { STATUS_HELP } from '../../src/cli/status';

export const DOCS_DIR = resolve(__dirname, '..', '..', '..', 'docs', 'commands');
export const HELP_BY_PAGE: Readonly<Record<string, string>> = {
  snakebite: MAIN_HELP,
  server: SERVER_HELP,
  client: CLIENT_HELP,
  status: STATUS_HELP,
  doctor: DOCTOR_HELP,
};

const START = '<!-- help:start (kept equal to --help by test/unit/command-docs.test.ts) -->';
const END = '<!-- help:end -->';

export function helpBlock(help: string): string {
  return `${START}\n\`\`\`text\n${help.replace(/\n$/, '')}\n\`\`\`\n${END}`;
}

/** The help block a page holds now, or undefined when it has none. */
export function pageHelp(page: string): string | undefined {
  const start = page.indexOf(START);
  const end = page.indexOf(END);
  return start < 0 || end < start ? undefined : page.slice(start, end + END.length);
}

export function pagePath(name: string): string {
  return join(DOCS_DIR, `${name}.md`);
}

if (require.main === module && process.argv.includes('--write')) {
  for (const [name, help] of Object.entries(HELP_BY_PAGE)) {
    const path = pagePath(name);
    const page = readFileSync(path, 'utf8');
    const old = pageHelp(page);
    if (!old) throw new Error(`${path} has no help markers`);
    writeFileSync(path, page.replace(old, helpBlock(help)));
    process.stdout.write(`updated ${path}\n`);
  }
}
