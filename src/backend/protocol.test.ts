import { expect } from 'chai';
import {
  bodyKind,
  decodeClientFrame,
  decodeGridFrame,
  encodeClientFrame,
  encodeGridFrame,
  FrameReader,
  REPLY_FIELD,
  SessionState,
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

  it('round-trips the submit key, hold and acknowledgement fields', () => {
    const send = decodeClientFrame(
      encodeClientFrame({
        id: 7,
        sendTasks: { sessionId: 's', tasks: [{ payload: { text: 't' } }], submitKey: 'key-é' },
      }).subarray(4),
    );
    expect(send.sendTasks!.submitKey).to.equal('key-é');
    const fetch = decodeClientFrame(
      encodeClientFrame({
        id: 8,
        fetchOutputs: { sessionId: 's', countMax: 10, waitMs: 1000, holdMs: 0xffffffff },
      }).subarray(4),
    );
    expect(fetch.fetchOutputs).to.include({ sessionId: 's', countMax: 10, waitMs: 1000, holdMs: 0xffffffff });
    const ack = decodeClientFrame(
      encodeClientFrame({ id: 9, ackOutputs: { sessionId: 's', deliveryId: 'd1' } }).subarray(4),
    );
    expect(bodyKind(ack)).to.equal('ackOutputs');
    expect(ack.ackOutputs).to.include({ sessionId: 's', deliveryId: 'd1' });
    expect(REPLY_FIELD.ackOutputs).to.equal('closed');

    const reply = decodeGridFrame(
      encodeGridFrame({
        id: 8,
        fetchOutputs: {
          outputs: [{ taskId: '1', successful: true, payload: { text: 'o' } }],
          deliveryId: 'd1',
        },
      }).subarray(4),
    );
    expect(reply.fetchOutputs!.deliveryId).to.equal('d1');
    expect(reply.fetchOutputs!.outputs[0]).to.deep.include({ taskId: '1', payload: { text: 'o' } });
    const status = decodeGridFrame(
      encodeGridFrame({
        id: 10,
        sessionStatus: {
          sessionId: 's',
          state: SessionState.OPEN,
          pending: 0,
          running: 0,
          done: 3,
          failed: 0,
          outputsReady: 1,
          outputsHeld: 2,
        },
      }).subarray(4),
    );
    expect(status.sessionStatus).to.include({ outputsReady: 1, outputsHeld: 2 });
  });

  it('reads the new fields as empty from peers that do not send them', () => {
    // Exactly what a grid or client written before these fields puts on the wire.
    const send = decodeClientFrame(
      encodeClientFrame({ id: 1, sendTasks: { sessionId: 's', tasks: [{}] } }).subarray(4),
    );
    expect(send.sendTasks!.submitKey).to.equal('');
    const fetch = decodeClientFrame(
      encodeClientFrame({ id: 2, fetchOutputs: { sessionId: 's', countMax: 1 } }).subarray(4),
    );
    expect(fetch.fetchOutputs!.holdMs).to.equal(0);
    const reply = decodeGridFrame(encodeGridFrame({ id: 2, fetchOutputs: { outputs: [] } }).subarray(4));
    expect(reply.fetchOutputs!.deliveryId).to.equal('');
    // An empty delivery id is not written at all: the reply is byte-identical to the old one.
    expect(encodeGridFrame({ id: 2, fetchOutputs: { outputs: [], deliveryId: '' } })).to.deep.equal(
      encodeGridFrame({ id: 2, fetchOutputs: { outputs: [] } }),
    );
  });

  it('round-trips task usage as plain numbers, 64-bit fields included', () => {
    const usage = {
      startTimeMs: 1_767_225_600_123,
      endTimeMs: 1_767_225_724_456,
      cpuTimeMs: 2 ** 40,
      machine: 'wn-042.example.org',
      processors: 1,
      maxRssKb: 2 ** 33,
      maxVmemKb: 0,
    };
    const reply = decodeGridFrame(
      encodeGridFrame({
        id: 4,
        fetchOutputs: { outputs: [{ taskId: '1', successful: false, exception: 'x', usage }] },
      }).subarray(4),
    );
    const got = reply.fetchOutputs!.outputs[0]!.usage;
    // deep.equal also proves these are numbers: a Long object would not compare equal.
    expect(got).to.deep.equal(usage);
    expect(Object.getPrototypeOf(got)).to.equal(Object.prototype);
  });

  it('reads absent usage as undefined, and writes nothing for it', () => {
    const reply = decodeGridFrame(
      encodeGridFrame({ id: 5, fetchOutputs: { outputs: [{ taskId: '1', successful: true }] } }).subarray(4),
    );
    expect(reply.fetchOutputs!.outputs[0]!.usage).to.equal(undefined);
    // The frame a grid predating usage sends: field 6 of TaskOutput is simply not there.
    expect(
      encodeGridFrame({ id: 5, fetchOutputs: { outputs: [{ taskId: '1', successful: true }] } }).toString(
        'hex',
      ),
    ).to.equal('0000000c' + '0805' + '8a0107' + '0a05' + '0a0131' + '1001');
  });

  it('encodes usage as TaskOutput field 6 with zeros left out', () => {
    const bytes = encodeGridFrame({
      id: 6,
      fetchOutputs: {
        outputs: [
          {
            taskId: '1',
            successful: true,
            usage: {
              startTimeMs: 300,
              endTimeMs: 301,
              cpuTimeMs: 0,
              machine: 'h',
              processors: 1,
              maxRssKb: 0,
              maxVmemKb: 0,
            },
          },
        ],
      },
    });
    // usage (32 0b): start 08 ac02, end 10 ad02, machine 22 01 68, processors 28 01.
    expect(bytes.subarray(4).toString('hex')).to.equal(
      '0806' + '8a0114' + '0a12' + '0a0131' + '1001' + '320b' + '08ac02' + '10ad02' + '220168' + '2801',
    );
  });

  it('encodes ack_outputs as ClientFrame field 18', () => {
    const bytes = encodeClientFrame({ id: 3, ackOutputs: { sessionId: 's1', deliveryId: 'd1' } });
    expect(bytes.toString('hex')).to.equal('0000000d' + '0803' + '920108' + '0a027331' + '12026431');
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
