import { ErrorCode } from '../backend/protocol';

/** A request failure reported to the client as a GridError frame. */
export class GridError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'GridError';
  }
}

export { ErrorCode };
