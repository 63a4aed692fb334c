/**
 * What start-up has opened so far, closed in reverse. A start that fails half-way closes every
 * part it had already started (the embedded grid and its workers included) before it rethrows.
 */
import { log } from '../log';

export class Resources {
  private readonly closers: { name: string; close: () => Promise<void> | void }[] = [];

  /** Registers a part to close; returns the part for chaining. */
  add<T>(name: string, part: T, close: (part: T) => Promise<void> | void): T {
    this.closers.push({ name, close: () => close(part) });
    return part;
  }

  /** Closes everything registered, newest first; one failure does not stop the others. */
  async closeAll(): Promise<void> {
    while (this.closers.length) {
      const c = this.closers.pop()!;
      try {
        await c.close();
      } catch (e) {
        log.warn('closing a part of the proxy failed', {
          part: c.name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
  }
}
