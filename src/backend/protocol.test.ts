import { expect } from 'chai';
import {
  decodeClientFrame,
  decodeGridFrame,
  encodeClientFrame,
  encodeGridFrame,
  FrameReader,
} from './protocol';

describe('backend/protocol: framing and codec', () => {
  it('round-trips a request with each payload form', () => {
    const bytes = encodeClientFrame({
      id: 42,
      sendTasks: {
        sessionId: 's',
        tasks: [
          { payload: { xml: '<a xmlns="urn:a"/>' } },
          { payload: { text: 't' } },
          { payload: { binary: Buffer.from([0, 255]) } },
        ],
      },
    });
    const f = decodeClientFrame(bytes.subarray(4));
    expect(f.id).to.equal(42);
    expect(f.sendTasks!.tasks.map((t) => t.payload)).to.deep.equal([
      { xml: '<a xmlns="urn:a"/>' },
      { text: 't' },
      { binary: new Uint8Array([0, 255]) },
    ]);
  });

  it('reassembles frames split and joined arbitrarily', () => {
    const a = encodeGridFrame({ id: 1, sendTasks: { taskIds: ['1', '2'] } });
    const b = encodeGridFrame({ id: 2, closed: {} });
    const all = Buffer.concat([a, b]);
    const reader = new FrameReader();
    const got: Buffer[] = [];
    for (let i = 0; i < all.length; i += 3) got.push(...reader.push(all.subarray(i, i + 3)));
    expect(got.map((g) => decodeGridFrame(g).id)).to.deep.equal([1, 2]);
  });

  it('refuses a frame above the limit before buffering it', () => {
    const reader = new FrameReader(16);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(17);
    expect(() => reader.push(header)).to.throw('exceeds');
  });
});
