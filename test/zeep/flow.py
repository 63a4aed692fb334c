"""A zeep client generated from the proxy's WSDL runs the whole flow, unsigned.

Usage: /usr/bin/python3 flow.py WSDL_URL
Prints one JSON object with what it observed; the mocha test asserts on it.
"""
import json
import sys

from lxml import etree
from zeep import Client
from zeep.exceptions import Fault

wsdl = sys.argv[1]
client = Client(wsdl)
conn = client.bind("SymphonyService", "ConnectionPort")
sess = client.bind("SymphonyService", "SessionPort")
tin = client.bind("SymphonyService", "TaskInputPort")
tout = client.bind("SymphonyService", "TaskOutputPort")

result = {}
# Each answer also carries the resource's endpoint reference (EndpointReference.Address).
connection_id = conn.connect(applicationName="echo", username="zeep-client", password="pw").connectionId
session_id = sess.createSession(
    connectionId=connection_id,
    sessionCreationAttributes={"name": "zeep", "priority": 5, "compressionEnable": False},
).sessionId

expected = {}
for i in range(20):
    task_id = tin.sendTaskInput(
        sessionId=session_id, taskSubmissionAttributes={"tag": "t%d" % i, "taskInput": {"text": "zeep-%d" % i}}
    )
    expected[task_id] = ("text", "zeep-%d" % i)

calc = etree.Element("{urn:example:calc}calc", n="7")
etree.SubElement(calc, "{urn:example:calc}x").text = "14"
batch = [{"taskInput": {"binary": b"raw-%d\x00" % i}} for i in range(10)]
batch.append({"taskInput": {"xml": {"_value_1": calc}}})
ids = tin.sendTaskInputBatch(sessionId=session_id, taskSubmissionAttributes=batch)
for i, task_id in enumerate(ids[:10]):
    expected[task_id] = ("binary", b"raw-%d\x00" % i)
expected[ids[10]] = ("xml", "14")

received = {}
for _ in range(100):
    if len(received) >= len(expected):
        break
    reply = tout.fetchTaskOutput(sessionId=session_id, countMax=50, timeoutMillis=500)
    for o in reply.taskOutput or []:
        received[o.taskId] = o

mismatches = []
for task_id, (kind, value) in expected.items():
    o = received.get(task_id)
    if o is None or not o.successful:
        mismatches.append(task_id)
        continue
    if kind == "text" and o.taskOutput.text != value:
        mismatches.append(task_id)
    if kind == "binary" and o.taskOutput.binary != value:
        mismatches.append(task_id)
    if kind == "xml":
        el = o.taskOutput.xml._value_1
        if el.find("{urn:example:calc}x").text != value:
            mismatches.append(task_id)

result["submitted"] = len(expected)
result["received"] = len(received)
result["mismatches"] = mismatches

status = sess.getSessionStatus(sessionId=session_id)
result["state"] = status.state

sess.closeSession(sessionId=session_id, closeFlags="DestroyOnClose")
try:
    sess.getSessionStatus(sessionId=session_id)
    result["fault"] = None
except Fault as f:
    detail = f.detail[0] if f.detail is not None and len(f.detail) else None
    result["fault"] = etree.QName(detail).localname if detail is not None else "no-detail"

conn.closeConnection(connectionId=connection_id)
print(json.dumps(result))
