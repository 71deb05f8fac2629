/**
 * Every failure Snakebite reports to a user is a SnakebiteError: a stable `code`
 * for scripts and tests, a message that says what failed on what, and a `hint`
 * that says what to do about it.
 */
export type ErrorCode =
  | 'SB_USAGE'
  | 'SB_WG_NOT_FOUND'
  | 'SB_WG_FAILED'
  | 'SB_NO_SUCH_INTERFACE'
  | 'SB_PERMISSION'
  | 'SB_DUMP_MALFORMED'
  | 'SB_LISTEN_NOT_ON_INTERFACE'
  | 'SB_LISTEN_FAILED'
  | 'SB_NO_FANG_PEER'
  | 'SB_FANG_MISMATCH'
  | 'SB_FETCH_FAILED'
  | 'SB_FETCH_TIMEOUT'
  | 'SB_REPLY_TOO_LARGE'
  | 'SB_REPLY_MALFORMED'
  | 'SB_SERVER_REFUSED'
  | 'SB_POLICY_INVALID';

export class SnakebiteError extends Error {
  override readonly name = 'SnakebiteError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** What the user can do about it; undefined when there is nothing useful to say. */
    readonly hint?: string,
    options?: { cause?: unknown; fangAnswered?: boolean },
  ) {
    super(message, options);
    this.fangAnswered = options?.fangAnswered ?? false;
  }

  /**
   * True when the fang's machine itself answered (an HTTP status, or a refused
   * connection): the tunnel to it works, and only the server is missing or failing.
   */
  readonly fangAnswered: boolean;
}

export function isSnakebiteError(error: unknown, code?: ErrorCode): error is SnakebiteError {
  return error instanceof SnakebiteError && (code === undefined || error.code === code);
}

/** A one-line description of any thrown value, for logs. */
export function describeError(error: unknown): string {
  if (error instanceof SnakebiteError) return error.hint ? `${error.message} (${error.hint})` : error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
