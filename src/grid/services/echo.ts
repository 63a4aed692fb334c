/**
 * Echo service: returns its input. Two text inputs exist so that tests can exercise failure
 * paths: "fail:<message>" throws, "crash:worker" kills the service instance.
 */
import type { Payload } from '../../backend/protocol';

export function run(input: Payload): Payload {
  const text = input.text;
  if (text !== undefined) {
    if (text.startsWith('fail:')) throw new Error(text.slice('fail:'.length));
    if (text === 'crash:worker') process.exit(13);
  }
  return input;
}
