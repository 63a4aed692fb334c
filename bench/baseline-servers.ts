/**
 * Baseline servers the bench compares the proxy against, each run as its own process:
 *   node dist/bench/baseline-servers.js bare|node-soap
 * Prints `listening on PORT` once ready.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as soap from 'soap';
import { ROOT } from '../src/paths';

const ECHO_WSDL = `<?xml version="1.0" encoding="UTF-8"?>
<definitions name="Echo" targetNamespace="urn:bench:echo" xmlns="http://schemas.xmlsoap.org/wsdl/"
  xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="urn:bench:echo" xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <types>
    <xs:schema targetNamespace="urn:bench:echo" elementFormDefault="qualified">
      <xs:element name="echo"><xs:complexType><xs:sequence>
        <xs:element name="sessionId" type="xs:string"/><xs:element name="text" type="xs:string"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="echoResponse"><xs:complexType><xs:sequence>
        <xs:element name="taskId" type="xs:string"/>
      </xs:sequence></xs:complexType></xs:element>
    </xs:schema>
  </types>
  <message name="echoIn"><part name="parameters" element="tns:echo"/></message>
  <message name="echoOut"><part name="parameters" element="tns:echoResponse"/></message>
  <portType name="EchoPort"><operation name="echo"><input message="tns:echoIn"/><output message="tns:echoOut"/></operation></portType>
  <binding name="EchoBinding" type="tns:EchoPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="echo"><soap:operation soapAction="urn:bench:echo#echo"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation>
  </binding>
  <service name="EchoService"><port name="EchoPort" binding="tns:EchoBinding"><soap:address location="http://localhost/echo"/></port></service>
</definitions>`;

export const ECHO_REQUEST = (text: string): string =>
  `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
  `<e:echo xmlns:e="urn:bench:echo"><e:sessionId>0123456789abcdef0123456789abcdef</e:sessionId><e:text>${text}</e:text></e:echo>` +
  `</s:Body></s:Envelope>`;

function main(): void {
  const kind = process.argv[2];
  let n = 0;
  if (kind === 'bare') {
    const reply = Buffer.from('<ok/>');
    const server = http.createServer((req, res) => {
      req.on('data', () => undefined);
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(reply);
      });
    });
    server.listen(0, '127.0.0.1', () =>
      console.log(`listening on ${(server.address() as { port: number }).port}`),
    );
  } else if (kind === 'node-soap') {
    const server = http.createServer((_req, res) => {
      res.writeHead(404).end();
    });
    const service = { EchoService: { EchoPort: { echo: () => ({ taskId: String(++n) }) } } };
    server.listen(0, '127.0.0.1', () => {
      soap.listen(server, '/echo', service, ECHO_WSDL);
      console.log(`listening on ${(server.address() as { port: number }).port}`);
    });
  } else if (kind === 'node-soap-contract') {
    // node-soap serving our own WSDL and answering sendTaskInput without any relay: the
    // same contract and message as the proxy's single-task row.
    const server = http.createServer((_req, res) => {
      res.writeHead(404).end();
    });
    const port = { sendTaskInput: () => ({ taskId: String(++n) }) };
    const service = { SymphonyService: { TaskInputPort: port, TaskInputPortSoap12: port } };
    server.listen(0, '127.0.0.1', () => {
      soap.listen(server, {
        path: '/symphony',
        services: service,
        // node-soap binds by port address, first match wins; give only TaskInputPort this path.
        xml: readFileSync(join(ROOT, 'wsdl', 'symphony.wsdl'), 'utf8')
          .replace(/(<soap(?:12)?:address\s+location=)"[^"]*"/g, '$1"http://localhost/unused"')
          .replace(
            /(<wsdl:port name="TaskInputPort" [^>]*>\s*<soap:address location=")[^"]*"/,
            '$1http://localhost/symphony"',
          ),
        uri: join(ROOT, 'wsdl', 'symphony.wsdl'),
        // The standards' schemas import each other by canonical URL: read the stored copies.
        wsdl_options: {
          overrideImportLocation: (path: string) =>
            /^https?:/.test(path) ? join(ROOT, 'schemas', 'ws', basename(new URL(path).pathname)) : path,
        },
        callback: () => console.log(`listening on ${(server.address() as { port: number }).port}`),
      });
    });
  } else {
    console.error('usage: baseline-servers bare|node-soap|node-soap-contract');
    process.exit(2);
  }
}

if (require.main === module) main();
