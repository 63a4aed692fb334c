import { expect } from 'chai';
import { GatewayError } from '../errors/catalogue';
import { SYM, WSNT } from '../soap/ws-namespaces';
import { parseXml } from '../soap/xml';
import {
  checkTopicFor,
  DIALECT_CONCRETE,
  DIALECT_FULL,
  DIALECT_SIMPLE,
  readTopicExpression,
  topicMatches,
  wantsTaskEvents,
} from './topics';

const expr = (
  text: string,
  dialect = DIALECT_SIMPLE,
  decls = `xmlns:s="${SYM}"`,
): ReturnType<typeof readTopicExpression> =>
  readTopicExpression(
    parseXml(
      `<wsnt:TopicExpression xmlns:wsnt="${WSNT}" ${decls} Dialect="${dialect}">${text}</wsnt:TopicExpression>`,
    ),
  );

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof GatewayError) return e.code;
    throw e;
  }
  throw new Error('expected a GatewayError');
}

describe('notifications: topics (WS-Topics Simple and Concrete dialects)', () => {
  it('reads a Simple root topic, resolving its prefix where it was written', () => {
    expect(expr('s:TaskStateChanged')).to.deep.equal({ path: 'TaskStateChanged', exact: false });
    expect(expr('TaskOutputAvailable', DIALECT_SIMPLE, `xmlns="${SYM}"`)).to.deep.equal({
      path: 'TaskOutputAvailable',
      exact: false,
    });
  });

  it('reads a Concrete child topic, with or without the prefix on the child', () => {
    expect(expr('s:TaskStateChanged/Done', DIALECT_CONCRETE)).to.deep.equal({
      path: 'TaskStateChanged/Done',
      exact: true,
    });
    expect(expr('s:SessionStateChanged/s:Closed', DIALECT_CONCRETE).path).to.equal(
      'SessionStateChanged/Closed',
    );
  });

  it('refuses the Full dialect and unknown dialects with TopicExpressionDialectUnknown', () => {
    expect(code(() => expr('s:TaskStateChanged', DIALECT_FULL))).to.equal('SSP_TOPIC_DIALECT_UNKNOWN');
    expect(code(() => expr('s:TaskStateChanged', 'urn:nope'))).to.equal('SSP_TOPIC_DIALECT_UNKNOWN');
  });

  it('refuses malformed expressions and undeclared prefixes with InvalidTopicExpression', () => {
    expect(code(() => expr('s:TaskStateChanged/Done'))).to.equal('SSP_INVALID_TOPIC_EXPRESSION');
    expect(code(() => expr('x:TaskStateChanged'))).to.equal('SSP_INVALID_TOPIC_EXPRESSION');
    expect(code(() => expr('s:Task State'))).to.equal('SSP_INVALID_TOPIC_EXPRESSION');
    expect(code(() => expr(''))).to.equal('SSP_INVALID_TOPIC_EXPRESSION');
    expect(
      code(() => expr('s:TaskStateChanged/o:Done', DIALECT_CONCRETE, `xmlns:s="${SYM}" xmlns:o="urn:o"`)),
    ).to.equal('SSP_INVALID_TOPIC_EXPRESSION');
  });

  it('refuses topics outside the set with TopicNotSupported, and task topics on a connection', () => {
    expect(code(() => expr('s:Nothing'))).to.equal('SSP_TOPIC_NOT_SUPPORTED');
    expect(code(() => expr('o:TaskStateChanged', DIALECT_SIMPLE, 'xmlns:o="urn:other"'))).to.equal(
      'SSP_TOPIC_NOT_SUPPORTED',
    );
    expect(code(() => expr('s:TaskStateChanged/Running', DIALECT_CONCRETE))).to.equal(
      'SSP_TOPIC_NOT_SUPPORTED',
    );
    expect(code(() => checkTopicFor({ path: 'TaskOutputAvailable', exact: false }, 'connection'))).to.equal(
      'SSP_TOPIC_NOT_SUPPORTED',
    );
    expect(() =>
      checkTopicFor({ path: 'SessionStateChanged/Closed', exact: true }, 'connection'),
    ).not.to.throw();
  });

  it('matches Simple filters on children and Concrete filters exactly', () => {
    expect(topicMatches({ path: 'TaskStateChanged', exact: false }, 'TaskStateChanged/Done')).to.equal(true);
    expect(topicMatches({ path: 'TaskStateChanged', exact: false }, 'TaskStateChangedX')).to.equal(false);
    expect(topicMatches({ path: 'TaskStateChanged/Done', exact: true }, 'TaskStateChanged/Failed')).to.equal(
      false,
    );
    expect(wantsTaskEvents([])).to.equal(true);
    expect(wantsTaskEvents([{ path: 'SessionStateChanged', exact: false }])).to.equal(false);
    expect(wantsTaskEvents([{ path: 'TaskStateChanged/Done', exact: true }])).to.equal(true);
  });
});
