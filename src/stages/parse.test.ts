import { expect } from 'chai';
import { fakeCall, op } from '../../test/helpers/in-process';
import { SOAP11, SOAP12, SYM } from '../../test/helpers/soap-http';
import { GatewayError } from '../errors/catalogue';
import type { ReceivedCall } from '../pipeline/context';
import type { SoapVersion } from '../soap/envelope';
import { parse } from './parse';

const LIMITS = { maxDepth: 64, maxAttributes: 64, maxNameLength: 256, maxElements: 200_000, maxHeaders: 32 };
const hook = parse(LIMITS);
const WSA = 'http://www.w3.org/2005/08/addressing';
const WSA_2004 = 'http://schemas.xmlsoap.org/ws/2004/08/addressing';
const PAYLOAD = op('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>');

/** A call as the transport phase leaves it: the body read, the version chosen from the content type. */
function received(xml: string | Buffer, version: SoapVersion = '1.1'): ReceivedCall {
  const ctx = Object.assign(fakeCall(), { raw: Buffer.from(xml) });
  ctx.soapVersion = version;
  return ctx;
}

function env(body: string, header?: string, ns = SOAP11): string {
  return (
    `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="${ns}">` +
    (header === undefined ? '' : `<s:Header>${header}</s:Header>`) +
    `<s:Body>${body}</s:Body></s:Envelope>`
  );
}

const messageId = (id: string, ns = WSA): string => `<a:MessageID xmlns:a="${ns}">${id}</a:MessageID>`;

/** The fault a hook ended the call with; fails the test when it did not throw a GatewayError. */
async function refusal(run: Promise<unknown>): Promise<GatewayError> {
  try {
    await run;
  } catch (e) {
    expect(e).to.be.instanceOf(GatewayError);
    if (e instanceof GatewayError) return e;
  }
  throw new Error('expected the stage to refuse the call');
}

async function codeOf(xml: string, version: SoapVersion = '1.1', limits = LIMITS): Promise<string> {
  const ctx = received(xml, version);
  const err = await refusal(parse(limits)(ctx));
  expect(ctx.envelope, 'nothing is established on a refusal').to.equal(undefined);
  expect(ctx.payload).to.equal(undefined);
  return err.code;
}

describe('stages/parse: a well-formed envelope', () => {
  it('establishes envelope, a null header and the payload of a SOAP 1.1 envelope', async () => {
    const ctx = received(env(PAYLOAD));
    await hook(ctx);
    expect(ctx.envelope).to.include({ uri: SOAP11, local: 'Envelope' });
    expect(ctx.header).to.equal(null);
    expect(ctx.payload).to.include({ uri: SYM, local: 'getSessionStatus' });
    expect(ctx.payload?.parent).to.include({ uri: SOAP11, local: 'Body' });
    expect(ctx.payload?.parent?.parent).to.equal(ctx.envelope);
  });

  it('establishes the header when there is one, and reads a SOAP 1.2 envelope with a 1.2 content type', async () => {
    const ctx = received(env(PAYLOAD, '<h:Trace xmlns:h="urn:h">1</h:Trace>', SOAP12), '1.2');
    await hook(ctx);
    expect(ctx.header).to.include({ uri: SOAP12, local: 'Header' });
    expect(ctx.header?.parent).to.equal(ctx.envelope);
    expect(ctx.payload).to.include({ local: 'getSessionStatus' });
  });

  it('accepts a UTF-8 byte order mark and an empty Header', async () => {
    const ctx = received(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(env(PAYLOAD, ''))]));
    await hook(ctx);
    expect(ctx.header).to.include({ local: 'Header' });
    expect(ctx.payload).to.include({ local: 'getSessionStatus' });
  });

  it('keeps the generated correlation id and no messageId without WS-Addressing', async () => {
    const ctx = received(env(PAYLOAD, '<h:Trace xmlns:h="urn:h">abc</h:Trace>'));
    const generated = ctx.correlationId;
    await hook(ctx);
    expect(ctx.correlationId).to.equal(generated);
    expect(ctx.messageId).to.equal(undefined);
  });
});

describe('stages/parse: WS-Addressing MessageID', () => {
  it('makes a plain-token MessageID the correlation id and the messageId (both WSA namespaces)', async () => {
    for (const ns of [WSA, WSA_2004]) {
      const id = 'urn:uuid:6f1b5c7e-0d1a-4c55-9a0e-2b9f0c1d2e3f';
      const ctx = received(env(PAYLOAD, messageId(id, ns)));
      await hook(ctx);
      expect(ctx.correlationId, ns).to.equal(id);
      expect(ctx.messageId, ns).to.equal(id);
    }
  });

  it('trims whitespace around the MessageID', async () => {
    const ctx = received(env(PAYLOAD, messageId('\n  msg-1  \n')));
    await hook(ctx);
    expect(ctx.messageId).to.equal('msg-1');
    expect(ctx.correlationId).to.equal('msg-1');
  });

  it('ignores a MessageID that is not a plain token of at most 200 printable ASCII characters', async () => {
    for (const id of ['has space', 'caf\u00e9', 'x'.repeat(201), '', 'tab\there']) {
      const ctx = received(env(PAYLOAD, messageId(id)));
      const generated = ctx.correlationId;
      await hook(ctx);
      expect(ctx.correlationId, id).to.equal(generated);
      expect(ctx.messageId, id).to.equal(undefined);
    }
    const longest = received(env(PAYLOAD, messageId('y'.repeat(200))));
    await hook(longest);
    expect(longest.messageId).to.equal('y'.repeat(200));
  });

  it('ignores a MessageID outside the WS-Addressing namespaces, and one nested in another header', async () => {
    const foreign = received(env(PAYLOAD, messageId('foreign-1', 'urn:not-wsa')));
    await hook(foreign);
    expect(foreign.messageId).to.equal(undefined);
    const nested = received(env(PAYLOAD, `<h:Wrap xmlns:h="urn:h">${messageId('nested-1')}</h:Wrap>`));
    await hook(nested);
    expect(nested.messageId).to.equal(undefined);
  });

  it('refuses two MessageIDs, which a firewall and the proxy could read differently', async () => {
    const ctx = received(env(PAYLOAD, messageId('first-1') + messageId('second-2', WSA_2004)));
    const generated = ctx.correlationId;
    const err = await hook(ctx).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(GatewayError).with.property('code', 'SSP_INVALID_ARGUMENT');
    expect(ctx.messageId).to.equal(undefined);
    expect(ctx.correlationId).to.equal(generated);
  });

  it('counts header blocks before using any: too many keeps the generated correlation id', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `<h:X${i} xmlns:h="urn:h"/>`).join('');
    const ctx = received(env(PAYLOAD, messageId('adopted-too-soon') + many));
    const generated = ctx.correlationId;
    const err = await hook(ctx).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(GatewayError).with.property('code', 'SSP_XML_LIMIT');
    expect(ctx.correlationId).to.equal(generated);
  });

  it('ignores a MessageID in the Body', async () => {
    const ctx = received(env(op('getSessionStatus', messageId('in-body-1'))));
    await hook(ctx);
    expect(ctx.messageId).to.equal(undefined);
  });
});

describe('stages/parse: refusals', () => {
  it('refuses malformed XML with SSP_MALFORMED_XML', async () => {
    for (const xml of [
      '<a><b></a>',
      '',
      'not xml',
      env(PAYLOAD) + '<trailing/>',
      '<?xml version="1.0" encoding="ISO-8859-1"?><x/>',
      '<x>&undefined;</x>',
      '<p:x/>',
      ' <?xml version="1.0"?><x/>',
    ]) {
      expect(await codeOf(xml), xml).to.equal('SSP_MALFORMED_XML');
    }
  });

  it('refuses a body that is not well-formed UTF-8 with SSP_MALFORMED_XML, wherever the bad bytes are', async () => {
    const good = env(
      op('getSessionStatus', '<sym:sessionId>s-1</sym:sessionId>'),
      '<x:Note xmlns:x="urn:n">HERE</x:Note>',
    );
    for (const bad of [
      [0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0xbc],
      [0xe9],
      [0xc0, 0xbc],
      [0xed, 0xa0, 0x80],
    ]) {
      const at = good.indexOf('HERE');
      const bytes = Buffer.concat([
        Buffer.from(good.slice(0, at)),
        Buffer.from(bad),
        Buffer.from(good.slice(at + 4)),
      ]);
      const ctx = received(bytes);
      const err = await refusal(parse(LIMITS)(ctx));
      expect(err.code, bad.join(' ')).to.equal('SSP_MALFORMED_XML');
      expect(err.message).to.match(/not well-formed UTF-8 \(at byte \d+\)/);
    }
  });

  it('refuses DOCTYPE, processing instructions and comments with SSP_FORBIDDEN_XML', async () => {
    for (const xml of [
      '<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
      '<?xml version="1.0"?><?xml-stylesheet href="a"?><x/>',
      env(op('getSessionStatus', '<!-- note --><sym:sessionId>s</sym:sessionId>')),
      env('<?pi data?>' + PAYLOAD),
    ]) {
      expect(await codeOf(xml), xml).to.equal('SSP_FORBIDDEN_XML');
    }
  });

  it('refuses a document over the depth, attribute, name or element limits with SSP_XML_LIMIT', async () => {
    const small = { maxDepth: 6, maxAttributes: 3, maxNameLength: 20, maxElements: 10, maxHeaders: 4 };
    const deep = '<a>'.repeat(8) + '</a>'.repeat(8);
    const attrs = op('getSessionStatus', '<sym:sessionId a="1" b="2" c="3" d="4">s</sym:sessionId>');
    const longName = `<sym:${'n'.repeat(30)} xmlns:sym="${SYM}"/>`;
    const many = op('getSessionStatus', '<x/>'.repeat(12));
    for (const [what, body] of [
      ['depth', deep],
      ['attributes', attrs],
      ['name length', longName],
      ['elements', many],
    ]) {
      expect(await codeOf(env(body!), '1.1', small), what).to.equal('SSP_XML_LIMIT');
    }
  });

  it('refuses a root that is not a SOAP envelope with SSP_NOT_SOAP', async () => {
    for (const xml of [
      '<x xmlns="urn:evil"/>',
      `<s:Envelop xmlns:s="${SOAP11}"><s:Body>${PAYLOAD}</s:Body></s:Envelop>`,
      `<s:Envelope xmlns:s="urn:not-soap"><s:Body>${PAYLOAD}</s:Body></s:Envelope>`,
      `<s:Envelope xmlns:s="${SOAP11}"/>`,
      env(''),
      env(PAYLOAD + PAYLOAD),
      env(`text ${PAYLOAD}`),
      `<s:Envelope xmlns:s="${SOAP11}"><s:Body>${PAYLOAD}</s:Body><s:Header/></s:Envelope>`,
      `<s:Envelope xmlns:s="${SOAP11}">stray<s:Body>${PAYLOAD}</s:Body></s:Envelope>`,
    ]) {
      expect(await codeOf(xml), xml).to.equal('SSP_NOT_SOAP');
    }
  });

  it('refuses a SOAP 1.2 envelope sent with a SOAP 1.1 content type with SSP_VERSION_MISMATCH', async () => {
    expect(await codeOf(env(PAYLOAD, undefined, SOAP12), '1.1')).to.equal('SSP_VERSION_MISMATCH');
  });

  it('refuses a SOAP 1.1 envelope sent with a SOAP 1.2 content type with SSP_VERSION_MISMATCH', async () => {
    expect(await codeOf(env(PAYLOAD), '1.2')).to.equal('SSP_VERSION_MISMATCH');
  });

  it('refuses more header blocks than allowed with SSP_XML_LIMIT, and accepts exactly the limit', async () => {
    const limits = { ...LIMITS, maxHeaders: 2 };
    const block = (i: number): string => `<h:B${i} xmlns:h="urn:h"/>`;
    const atLimit = received(env(PAYLOAD, `${block(1)}\n  ${block(2)}\n`));
    await parse(limits)(atLimit);
    expect(atLimit.header).to.include({ local: 'Header' });
    const err = await refusal(parse(limits)(received(env(PAYLOAD, block(1) + block(2) + block(3)))));
    expect(err.code).to.equal('SSP_XML_LIMIT');
    expect(err.message).to.contain('2 SOAP header blocks');
  });
});
