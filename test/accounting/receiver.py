#!/usr/bin/python3
"""An APEL-side receiver for the accounting tests, independent of the proxy's TypeScript.

Subscribes with client acks and, per message, does what an SSM 2 receiver and the APEL loader
do (docs/design/accounting.md 1, 2, 3.1): decrypt if encrypted, verify the S/MIME signature with
the openssl binary, check the signer's slash-form DN against a list, then parse every record
with APEL's rules (one bad record rejects the whole message). Accepted records and rejected
messages go to two JSON-lines files, fsynced before the ACK.

Uses Debian's python3-stomp and the openssl binary only. Prints READY once subscribed; stops on
SIGTERM; exits 3 if the broker connection drops (the tests restart it when they need to).
"""
import argparse
import calendar
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from xml.dom import minidom

import stomp

CAR_NS = 'http://eu-emi.eu/namespaces/2012/11/computerecord'
TWO_DAYS = 2 * 24 * 3600


class Reject(Exception):
    pass


# --- APEL records (apel/db/records/job.py, summary.py) -------------------------------------------

JOB_FIELDS = ['Site', 'SubmitHost', 'MachineName', 'Queue', 'LocalJobId', 'LocalUserId',
              'GlobalUserName', 'FQAN', 'VO', 'VOGroup', 'VORole', 'WallDuration', 'CpuDuration',
              'Processors', 'NodeCount', 'StartTime', 'EndTime', 'InfrastructureDescription',
              'InfrastructureType', 'MemoryReal', 'MemoryVirtual', 'ServiceLevelType',
              'ServiceLevel']
JOB_IGNORED = {'SubmitHostType', 'UpdateTime'}
JOB_MANDATORY = ['Site', 'LocalJobId', 'WallDuration', 'CpuDuration', 'StartTime', 'EndTime']
JOB_INTS = {'WallDuration', 'CpuDuration', 'Processors', 'NodeCount', 'MemoryReal', 'MemoryVirtual'}
JOB_DATETIMES = {'StartTime', 'EndTime'}

SUMMARY_FIELDS = ['Site', 'Month', 'Year', 'GlobalUserName', 'VO', 'VOGroup', 'VORole', 'SubmitHost',
                  'InfrastructureType', 'InfrastructureDescription', 'ServiceLevelType',
                  'ServiceLevel', 'NodeCount', 'Processors', 'EarliestEndTime', 'LatestEndTime',
                  'WallDuration', 'CpuDuration', 'NumberOfJobs']
SUMMARY_MANDATORY = ['Site', 'Month', 'Year', 'WallDuration', 'CpuDuration', 'NumberOfJobs']
SUMMARY_INTS = {'Month', 'Year', 'NodeCount', 'Processors', 'WallDuration', 'CpuDuration', 'NumberOfJobs'}
SUMMARY_DATETIMES = {'EarliestEndTime', 'LatestEndTime'}

FLOATS = {'ServiceLevel'}
MAX_LEN = {'InfrastructureType': 20, 'InfrastructureDescription': 100}
BENCHMARKS = {'si2k', 'hepspec', 'hepscore23'}
NULLS = {'', 'none', 'null'}


def to_epoch(key, value):
    if re.fullmatch(r'-?\d+', value):
        return int(value)
    m = re.fullmatch(r'(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z', value)
    if not m:
        raise Reject('%s: not epoch seconds or YYYY-MM-DDTHH:MM:SSZ: %r' % (key, value))
    return calendar.timegm(tuple(int(g) for g in m.groups()) + (0, 0, 0))


def typed(key, value, ints, datetimes):
    if value.lower() in NULLS:
        return None
    if len(value) > MAX_LEN.get(key, 255):
        raise Reject('%s: longer than %d characters' % (key, MAX_LEN.get(key, 255)))
    try:
        if key in ints:
            return int(value)  # Python int(): "12.5" or "12s" are errors, as in APEL
        if key in FLOATS:
            return float(value)
    except ValueError:
        raise Reject('%s: not a number: %r' % (key, value))
    if key in datetimes:
        return to_epoch(key, value)
    return value


def parse_lines(text, fields, ignored, ints, datetimes):
    record = {}
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        if ':' not in line:
            raise Reject('line without ":": %r' % line)
        key, value = (part.strip() for part in line.split(':', 1))
        if key in ignored:
            continue
        if key not in fields:
            raise Reject('Unknown field: %r' % key)
        record[key] = typed(key, value, ints, datetimes)
    return record


def require(record, mandatory):
    for key in mandatory:
        if record.get(key) is None:
            raise Reject('mandatory field missing or null: %s' % key)


def check_service_level(record):
    slt, sl = record.get('ServiceLevelType'), record.get('ServiceLevel')
    if (slt is None) != (sl is None):
        raise Reject('ServiceLevelType and ServiceLevel must both be present or both absent')
    if slt is not None and slt.lower() not in BENCHMARKS:
        raise Reject('unknown ServiceLevelType: %r' % slt)


def apply_fqan(record):
    fqan = record.get('FQAN')
    if not fqan:
        return
    parts = [p for p in fqan.split('/') if p]
    role = next((p.split('=', 1)[1] for p in parts if p.startswith('Role=')), None)
    groups = [p for p in parts if '=' not in p]
    record['VO'] = groups[0] if groups else None
    record['VOGroup'] = '/' + '/'.join(groups) if groups else None
    record['VORole'] = 'Role=' + role if role else None


def check_job(record):
    require(record, JOB_MANDATORY)
    if record['EndTime'] < record['StartTime']:
        raise Reject('EndTime is before StartTime')
    if record['EndTime'] > time.time() + TWO_DAYS:
        raise Reject('EndTime is more than two days in the future')
    check_service_level(record)
    apply_fqan(record)
    return record


def check_summary(record):
    require(record, SUMMARY_MANDATORY)
    if not 1 <= record['Month'] <= 12:
        raise Reject('Month out of range: %r' % record['Month'])
    now = time.gmtime()
    if (record['Year'], record['Month']) > (now.tm_year, now.tm_mon):
        raise Reject('summary month is in the future')
    for key in ('WallDuration', 'CpuDuration', 'NumberOfJobs'):
        if record[key] < 0:
            raise Reject('%s is negative' % key)
    first = calendar.timegm((record['Year'], record['Month'], 1, 0, 0, 0))
    days = calendar.monthrange(record['Year'], record['Month'])[1]
    end = first + days * 86400
    early, late = record.get('EarliestEndTime'), record.get('LatestEndTime')
    for key, value in (('EarliestEndTime', early), ('LatestEndTime', late)):
        if value is not None and not first <= value < end:
            raise Reject('%s is outside the summary month' % key)
    if early is not None and late is not None and early > late:
        raise Reject('EarliestEndTime is after LatestEndTime')
    check_service_level(record)
    return record


def parse_apel(text):
    header, _, rest = text.partition('\n')
    kind, _, version = (p.strip() for p in header.partition(':'))
    if kind == 'APEL-individual-job-message':
        if version == 'v0.4':
            raise Reject('job message v0.4 is not handled by this test receiver')
        parse = lambda t: check_job(parse_lines(t, JOB_FIELDS, JOB_IGNORED, JOB_INTS, JOB_DATETIMES))
        name = 'job'
    elif kind == 'APEL-summary-job-message' and version == 'v0.2':
        parse = lambda t: check_summary(parse_lines(t, SUMMARY_FIELDS, set(), SUMMARY_INTS, SUMMARY_DATETIMES))
        name = 'summary'
    else:
        raise Reject('unknown message header: %r' % header)
    records = [parse(piece) for piece in rest.split('%%') if piece.strip()]
    return name, records


# --- CAR (apel/db/loader/car_parser.py) -----------------------------------------------------------

def iso2seconds(value):
    m = re.fullmatch(r'P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?'
                     r'(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?)?', value.strip())
    if not m or value.strip() in ('P', 'PT'):
        raise Reject('not an ISO 8601 duration: %r' % value)
    y, mo, w, d, h, mi, s = m.groups()
    total = (int(y or 0) * 365 * 86400 + int(mo or 0) * 30 * 86400 + int(w or 0) * 7 * 86400
             + int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0))
    return int(round(total))


def car_text(node, name, attr=None, attr_value=None):
    for el in node.getElementsByTagNameNS(CAR_NS, name):
        if attr is None or el.getAttributeNS(CAR_NS, attr) == attr_value:
            return ''.join(c.data for c in el.childNodes if c.nodeType == c.TEXT_NODE).strip()
    return None


def car_record(ur):
    rec = {}
    for key in ('Site', 'SubmitHost', 'MachineName', 'Queue', 'LocalJobId', 'LocalUserId',
                'GlobalUserName'):
        rec[key] = car_text(ur, key)
    rec['VO'] = car_text(ur, 'Group')
    rec['FQAN'] = car_text(ur, 'GroupAttribute', 'type', 'FQAN')
    rec['VOGroup'] = car_text(ur, 'GroupAttribute', 'type', 'group')
    rec['VORole'] = car_text(ur, 'GroupAttribute', 'type', 'role')
    wall = car_text(ur, 'WallDuration')
    cpu = car_text(ur, 'CpuDuration', 'usageType', 'all') or car_text(ur, 'CpuDuration')
    rec['WallDuration'] = iso2seconds(wall) if wall else None
    rec['CpuDuration'] = iso2seconds(cpu) if cpu else None
    for key in ('Processors', 'NodeCount'):
        value = car_text(ur, key)
        rec[key] = typed(key, value, JOB_INTS, set()) if value is not None else None
    for key in ('StartTime', 'EndTime'):
        value = car_text(ur, key)
        rec[key] = to_epoch(key, value) if value else None
    infra = ur.getElementsByTagNameNS(CAR_NS, 'Infrastructure')
    if infra:
        rec['InfrastructureType'] = infra[0].getAttributeNS(CAR_NS, 'type') or None
        rec['InfrastructureDescription'] = infra[0].getAttributeNS(CAR_NS, 'description') or None
    sl = ur.getElementsByTagNameNS(CAR_NS, 'ServiceLevel')
    if sl:
        rec['ServiceLevelType'] = sl[0].getAttributeNS(CAR_NS, 'type') or None
        rec['ServiceLevel'] = typed('ServiceLevel', car_text(ur, 'ServiceLevel') or '', set(), set())
    return check_job({k: v for k, v in rec.items() if v is not None})


def parse_car(text):
    try:
        doc = minidom.parseString(text)
    except Exception as e:  # expat raises several types
        raise Reject('CAR is not well-formed XML: %s' % e)
    urs = doc.getElementsByTagNameNS(CAR_NS, 'UsageRecord')
    if not urs:
        raise Reject('no UsageRecord in the CAR namespace')
    return 'car', [car_record(ur) for ur in urs]


# --- S/MIME (ssm/crypto.py) -----------------------------------------------------------------------

def openssl(args, data):
    p = subprocess.run(['openssl'] + args, input=data, capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr.decode('ascii', 'replace')


def signer_dn(signed):
    rc, pk7, err = openssl(['smime', '-pk7out'], signed)
    if rc != 0:
        raise Reject('cannot extract the signature: %s' % err.strip())
    rc, certs, err = openssl(['pkcs7', '-print_certs'], pk7)
    if rc != 0:
        raise Reject('cannot read the signer certificate: %s' % err.strip())
    # The signer is the only certificate that `openssl smime -sign` embeds by default.
    rc, subject, err = openssl(['x509', '-noout', '-subject', '-nameopt', 'compat'], certs)
    if rc != 0:
        raise Reject('cannot read the signer subject: %s' % err.strip())
    return subject.decode('ascii').strip().split('=', 1)[1].strip()


def verify(signed, cafile):
    # -purpose any: like SSM's -noverify, host certificates need not carry S/MIME key usage,
    # but unlike it the chain is still checked here, in one call.
    rc, out, err = openssl(['smime', '-verify', '-CAfile', cafile, '-purpose', 'any'], signed)
    if rc != 0 or 'Verification successful' not in err:
        raise Reject('signature verification failed: %s' % err.strip())
    head, sep, body = out.partition(b'\r\n\r\n')
    if not sep:
        head, sep, body = out.partition(b'\n\n')
    if b'text/plain' not in head.lower():
        raise Reject('signed part is not text/plain')
    return body.decode('ascii').replace('\r\n', '\n')


def decrypt(text, cert, key):
    if not cert or not key:
        raise Reject('encrypted message, but this receiver has no decryption key')
    rc, out, err = openssl(['smime', '-decrypt', '-recip', cert, '-inkey', key], text)
    if rc != 0:
        raise Reject('decryption failed: %s' % err.strip())
    return out


# --- the receiver -------------------------------------------------------------------------------

class Receiver(stomp.ConnectionListener):
    def __init__(self, conn, args, valid_dns):
        self.conn = conn
        self.args = args
        self.valid_dns = valid_dns
        self.out = open(args.out, 'a')
        self.rejects = open(args.rejects, 'a')
        self.stopping = threading.Event()
        self.lost = threading.Event()

    def on_message(self, frame):
        empa_id = frame.headers.get('empa-id')
        try:
            kind, records, signer = self.handle(frame.body)
            for rec in records:
                self.write(self.out, {'empa_id': empa_id, 'kind': kind, 'signer': signer,
                                      'fields': rec})
        except Reject as e:
            self.write(self.rejects, {'empa_id': empa_id, 'reason': str(e)})
        self.flush()
        self.conn.ack(frame.headers['ack'])

    def handle(self, raw):
        try:
            text = raw.decode('ascii')  # SSM decodes as ASCII before any check
        except UnicodeDecodeError:
            raise Reject('message body is not ASCII')
        if not text.strip():
            return 'ping', [], None
        data = text.encode('ascii')
        if 'application/pkcs7-mime' in text or 'application/x-pkcs7-mime' in text:
            data = decrypt(data, self.args.decrypt_cert, self.args.decrypt_key)
        body = verify(data, self.args.cafile).strip()
        signer = signer_dn(data)
        if signer not in self.valid_dns:
            raise Reject('signer %s is not in the valid DN list' % signer)
        kind, records = parse_car(body) if body.startswith('<') else parse_apel(body)
        return kind, records, signer

    def write(self, f, obj):
        f.write(json.dumps(obj, sort_keys=True) + '\n')

    def flush(self):
        for f in (self.out, self.rejects):
            f.flush()
            os.fsync(f.fileno())

    def on_disconnected(self):
        if not self.stopping.is_set():
            self.lost.set()

    def on_error(self, frame):
        sys.stderr.write('receiver: ERROR frame: %s\n' % frame.headers.get('message'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--login', required=True)
    ap.add_argument('--passcode-file', required=True, help='kept off the command line')
    ap.add_argument('--vhost', default='/')
    ap.add_argument('--destination', required=True)
    ap.add_argument('--cafile', required=True)
    ap.add_argument('--dns', required=True, help='valid signer DNs, one per line')
    ap.add_argument('--out', required=True)
    ap.add_argument('--rejects', required=True)
    ap.add_argument('--tls-ca')
    ap.add_argument('--tls-cert')
    ap.add_argument('--tls-key')
    ap.add_argument('--decrypt-cert')
    ap.add_argument('--decrypt-key')
    args = ap.parse_args()

    with open(args.dns) as f:
        valid_dns = {line.strip() for line in f if line.strip() and not line.startswith('#')}
    with open(args.passcode_file) as f:
        passcode = f.read().strip()

    conn = stomp.Connection12([(args.host, args.port)], vhost=args.vhost, auto_decode=False,
                              reconnect_attempts_max=1, heartbeats=(0, 0))
    if args.tls_ca:
        conn.set_ssl(for_hosts=[(args.host, args.port)], key_file=args.tls_key,
                     cert_file=args.tls_cert, ca_certs=args.tls_ca)
    receiver = Receiver(conn, args, valid_dns)
    conn.set_listener('receiver', receiver)
    signal.signal(signal.SIGTERM, lambda *_: receiver.stopping.set())
    conn.connect(args.login, passcode, wait=True)
    conn.subscribe(args.destination, id='1', ack='client-individual')
    print('READY', flush=True)
    while not receiver.stopping.wait(0.1):
        if receiver.lost.is_set():
            sys.stderr.write('receiver: lost the broker connection\n')
            sys.exit(3)
    conn.disconnect()


if __name__ == '__main__':
    main()
