import { readFileSync, statSync } from 'node:fs';
import { SnakebiteError } from '../errors';
import type { Logger } from '../log/logger';
import { MAX_POLICY_BYTES, parsePolicy, PolicyError, type Policy } from './policy';

/** Reads and parses the policy file; throws PolicyError (line and reason) or SB_POLICY_INVALID. */
export function loadPolicyFile(path: string): Policy {
  let text: string;
  try {
    if (statSync(path).size > MAX_POLICY_BYTES) throw new Error(`larger than ${MAX_POLICY_BYTES} bytes`);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SnakebiteError('SB_POLICY_INVALID', `cannot read the policy file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'check the path given to --policy', { cause: error });
  }
  return parsePolicy(text, path);
}

/**
 * Reloads the policy on SIGHUP: a good file is put in force with `apply`
 * (clients stay connected and get full lists); a bad one is refused with its
 * line and reason, and the policy in force stays. Returns the remover.
 */
export function reloadPolicyOnHangup(path: string, logger: Logger, apply: (policy: Policy) => Promise<void>): () => void {
  let busy = Promise.resolve();
  const onHangup = () => {
    busy = busy.then(async () => {
      let policy: Policy;
      try {
        policy = loadPolicyFile(path);
      } catch (error) {
        const where = error instanceof PolicyError ? { line: error.line, reason: error.reason } : { reason: (error as Error).message };
        logger.error('policy-refused', { file: path, ...where, hint: 'the policy in force stays; fix the file and send SIGHUP again' });
        return;
      }
      await apply(policy);
      logger.info('policy-loaded', { file: path, ...policy.summary });
    });
  };
  process.on('SIGHUP', onHangup);
  return () => process.removeListener('SIGHUP', onHangup);
}

/**
 * Without a policy there is nothing to reload, but SIGHUP must not stop the
 * server (its default action), e.g. on `systemctl reload`. Returns the remover.
 */
export function ignoreHangup(logger: Logger): () => void {
  const onHangup = () => logger.info('policy-reload-skipped', { reason: 'no --policy file: nothing to reload' });
  process.on('SIGHUP', onHangup);
  return () => process.removeListener('SIGHUP', onHangup);
}
