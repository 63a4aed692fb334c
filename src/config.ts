/**
 * One typed configuration: defaults ← YAML/JSON file ← SSP_* environment overrides, then
 * validated. Every error names the key, so an operator knows which line to fix.
 *
 * Environment overrides use `__` between path segments: SSP_SERVER__PORT=8081,
 * SSP_GRID__CLUSTERS__0__ADDRESSES='["10.0.0.5:7000"]'. Values are read as JSON when they parse.
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { hostOf, isLoopbackHost } from './backend/grid-tls';

const address = z.string().regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port');

const gridTls = z.strictObject({
  /** CAs that the grid's certificate must chain to. */
  caFiles: z.array(z.string().min(1)).min(1),
  /** The proxy's client certificate and key, which the grid verifies (mutual TLS). */
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** Name expected in the grid's certificate; default the host of each address. */
  serverName: z.string().min(1).optional(),
  /** Accept only grid certificates with these SHA-256 fingerprints (hex, colons optional). */
  pinnedFingerprints256: z
    .array(z.string().regex(/^([0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$/, 'must be a SHA-256 fingerprint in hex'))
    .default([]),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.3'),
  /** Reload certificate, key and CAs when a file changes (SIGHUP reloads them too). */
  watch: z.boolean().default(true),
});

const cluster = z
  .object({
    name: z.string().min(1),
    /** clusterURL values a client may pass to connect to reach this cluster. */
    urls: z.array(z.string().min(1)).default([]),
    addresses: z.array(address).min(1),
    sharedSecret: z.string().default(''),
    poolSize: z.number().int().min(1).max(64).default(2),
    connectTimeoutMs: z.number().int().positive().default(3000),
    requestTimeoutMs: z.number().int().positive().default(30000),
    /** TLS on the grid link. Required unless every address is loopback or plaintext is set. */
    tls: gridTls.optional(),
    /** Plain TCP to a non-loopback grid, stated on purpose: payloads and passwords travel in clear. */
    plaintext: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    if (c.tls && c.plaintext) {
      ctx.addIssue({
        code: 'custom',
        path: ['plaintext'],
        message: 'is true but tls is configured too: choose one',
      });
    }
    const remote = c.addresses.filter((a) => !isLoopbackHost(hostOf(a)));
    if (!c.tls && !c.plaintext && remote.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: `is required: ${remote.join(', ')} is not a loopback address, and plain TCP would carry task payloads and grid passwords in clear. Configure tls (caFiles, certFile, keyFile), or set plaintext: true to accept that`,
      });
    }
  });

const tls = z.object({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** CAs that client certificates must chain to when client certificates are requested. */
  caFiles: z.array(z.string().min(1)).default([]),
  /** Ask TLS clients for a certificate; when one is given it must be the WS-Security signer's. */
  requestClientCert: z.boolean().default(false),
  /** Refuse TLS clients without a certificate (mTLS). Implies requestClientCert. */
  requireClientCert: z.boolean().default(false),
});

const consumerMapping = z
  .object({
    /** Consumer id used for ownership, limits, audit and accounting. */
    id: z.string().min(1),
    /** Subject DN in RFC 4514 form, e.g. "CN=risk-batch,OU=Grid,O=Bank". */
    subject: z.string().min(1).optional(),
    /** SHA-256 fingerprint of the signing certificate (hex, colons optional). */
    fingerprint256: z.string().min(1).optional(),
  })
  .refine((m) => m.subject !== undefined || m.fingerprint256 !== undefined, {
    message: 'needs a subject or a fingerprint256',
  });

const security = z
  .object({
    /** 'wss': every request must carry a valid WS-Security signature. 'off': development only. */
    mode: z.enum(['wss', 'off']).default('wss'),
    trust: z
      .object({
        /** Trust anchors (PEM, one or more certificates per file). */
        caFiles: z.array(z.string().min(1)).default([]),
        /** Intermediate CAs that may complete a chain the client does not send. */
        intermediateFiles: z.array(z.string().min(1)).default([]),
        /** CRLs (PEM or DER); a certificate listed in one is refused. */
        crlFiles: z.array(z.string().min(1)).default([]),
        /** Reload the CRLs when a file changes (SIGHUP reloads them too); a bad file keeps the old set. */
        watchCrls: z.boolean().default(true),
        /** Signer certificates a client may reference by issuer/serial, SKI or thumbprint. */
        signerCertFiles: z.array(z.string().min(1)).default([]),
        /** Online revocation checking of the signing certificate (RFC 6960), after its chain is built. */
        ocsp: z
          .strictObject({
            enabled: z.boolean().default(false),
            /** Ask this responder for every certificate; default the OCSP URL in the certificate's AIA. */
            responderUrl: z.url({ protocol: /^https?$/ }).optional(),
            /**
             * When no trustworthy answer can be had (responder down, slow, malformed or badly
             * signed answer, status 'unknown', no responder URL): 'closed' refuses the request
             * (SSP_WSS_REVOCATION_UNAVAILABLE, retryable; 'unknown' gives SSP_WSS_UNTRUSTED), so a
             * revoked key can never get through, at the price of availability while the responder
             * is out: the bank's usual choice for payment and risk traffic. 'open' accepts and logs a
             * warning, keeping the grid reachable during a responder outage; revocation then rests
             * on the CRLs alone, and an attacker who can block the responder can use a revoked key.
             */
            failMode: z.enum(['open', 'closed']).default('closed'),
            /** Longest wait for the responder, per request to it. */
            timeoutMs: z.number().int().min(100).max(60_000).default(3000),
            /** Good and revoked answers are cached until their nextUpdate, but at most this long. */
            cacheSeconds: z.number().int().min(0).max(86_400).default(300),
            /** Send a random nonce and require the responder to echo it (RFC 8954); many responders ignore nonces. */
            nonce: z.boolean().default(false),
          })
          .prefault({}),
      })
      .prefault({}),
    timestamp: z
      .object({
        /** Longest accepted lifetime of a request (Expires − Created), and the replay window. */
        ttlSeconds: z.number().int().min(1).max(86400).default(300),
        /** Tolerated clock difference between client and proxy. */
        skewSeconds: z.number().int().min(0).max(3600).default(60),
      })
      .prefault({}),
    algorithms: z
      .object({
        /** RSA-SHA1 / ECDSA-SHA1 signatures and SHA-1 digests. Off unless a legacy client needs it. */
        allowSha1: z.boolean().default(false),
        /** RSA-MD5 signatures and MD5 digests. */
        allowMd5: z.boolean().default(false),
        minRsaBits: z.number().int().min(1024).max(16384).default(2048),
      })
      .prefault({}),
    /**
     * While the shared store (Redis) is unreachable: 'refuse' signed requests (replays stay
     * impossible across proxies), or keep a 'local' per-process replay cache, the WSS4J/CXF
     * default, so that signed traffic continues with replay protection per proxy.
     */
    replayCacheOnStoreFailure: z.enum(['refuse', 'local']).default('refuse'),
    /** Optional table from certificate to consumer id; otherwise the subject DN is the id. */
    consumers: z.array(consumerMapping).default([]),
    /** Refuse signers that are trusted but not listed in `consumers`. */
    requireMappedConsumer: z.boolean().default(false),
    responseSigning: z
      .object({
        enabled: z.boolean().default(true),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
      })
      .prefault({}),
  })
  .superRefine((s, ctx) => {
    if (s.mode !== 'wss') return;
    if (s.trust.caFiles.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['trust', 'caFiles'],
        message:
          "is empty: WS-Security needs a trust store. Run 'symphony-soap-proxy certs dev' and use certs/dev/ca.pem, or point it at the bank's CA (or set mode: off for development)",
      });
    }
    const rs = s.responseSigning;
    if (rs.enabled && (!rs.certFile || !rs.keyFile)) {
      ctx.addIssue({
        code: 'custom',
        path: ['responseSigning'],
        message: 'needs certFile and keyFile when enabled (or set enabled: false)',
      });
    }
  });

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        path: z.string().startsWith('/').default('/symphony'),
        /** Address written into the served WSDL; defaults to the request's Host. */
        publicUrl: z.string().url().optional(),
        maxBodyBytes: z
          .number()
          .int()
          .positive()
          .default(16 * 1024 * 1024),
        keepAliveTimeoutMs: z.number().int().positive().default(65000),
        requestTimeoutMs: z.number().int().positive().default(120000),
        /**
         * On SIGTERM: readiness turns false at once, calls keep being served for drainDelayMs
         * (longer than the load balancer needs to see it: HAProxy inter x fall), then the
         * listener closes and calls in flight get up to drainTimeoutMs to finish.
         */
        drainDelayMs: z.number().int().min(0).default(5000),
        drainTimeoutMs: z.number().int().min(0).default(60000),
        /** HTTPS on the SOAP listener; omit for plain HTTP behind a TLS-terminating firewall. */
        tls: tls.optional(),
      })
      .prefault({}),
    admin: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9090),
        /** File holding the bearer token for POST /policy/reload; without it that call is refused. */
        tokenFile: z.string().min(1).optional(),
      })
      .prefault({}),
    policy: z
      .object({
        /**
         * The SLA control file (schemas/sla-control.xsd). When set, SOAP calls are served only at
         * its ServiceVersion uris, and SLA check, limits, routing and validation apply.
         */
        file: z.string().min(1).optional(),
        /** Reload when the file changes (SIGHUP and POST /policy/reload always work). */
        watch: z.boolean().default(true),
      })
      .prefault({}),
    store: z
      .object({
        /** memory: one proxy. redis: proxies share records, replay cache and rate limits. */
        kind: z.enum(['memory', 'redis']).default('memory'),
        redis: z
          .object({
            url: z.string().min(1).default('redis://127.0.0.1:6379'),
            /**
             * Redis Sentinel: the sentinels to ask for the current primary of `masterName`; the
             * URL then only carries credentials and the database number.
             */
            sentinels: z
              .array(z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }))
              .default([]),
            masterName: z.string().min(1).default('mymaster'),
            keyPrefix: z.string().default('ssp:'),
            commandTimeoutMs: z.number().int().positive().default(500),
            connectTimeoutMs: z.number().int().positive().default(3000),
          })
          .prefault({}),
      })
      .prefault({}),
    reliability: z
      .object({
        /** How long an answer is remembered for retries with the same client key. */
        clientKeyTtlMs: z.number().int().min(1000).default(900_000),
        /** Upper bound on a fetch's leaseMillis. */
        maxLeaseMs: z.number().int().min(1000).max(3_600_000).default(600_000),
        /** Unacknowledged outputs of a session are forgotten this long after its last fetch. */
        outputRetentionMs: z.number().int().min(60_000).default(86_400_000),
        /**
         * How long the grid keeps outputs it handed to this proxy until the proxy has stored
         * them: covers a proxy that dies between the grid's reply and the store write.
         */
        gridHoldMs: z.number().int().min(1000).max(600_000).default(30_000),
      })
      .prefault({}),
    audit: z
      .object({
        enabled: z.boolean().default(true),
        /** One file per proxy process: the hash chain is per file. */
        file: z.string().min(1).default('var/audit.jsonl'),
      })
      .prefault({}),
    security: security.prefault({}),
    grid: z
      .object({
        /** Start the reference grid as a child process and route the default cluster to it. */
        embedded: z.boolean().default(false),
        defaultCluster: z.string().default('default'),
        clusters: z.array(cluster).default([]),
      })
      .prefault({}),
    /** WS-Enumeration of task outputs and sessions (see docs/operations.md). */
    enumeration: z
      .strictObject({
        /** Expiry of a context whose Enumerate asks for none. */
        defaultExpiresMs: z.number().int().min(1000).default(600_000),
        /** Longest expiry granted; a longer request gets this (unless it says BestEffort="false"). */
        maxExpiresMs: z.number().int().min(1000).default(86_400_000),
        /** Most items in one page, whatever MaxElements or MaxItems asks. */
        maxElements: z.number().int().min(1).max(10_000).default(1000),
        /** Longest MaxTime honoured: how long a Pull may wait for the first output. */
        maxTimeMs: z.number().int().min(0).max(600_000).default(60_000),
        /** How long a page's outputs wait for the next Pull or Release before they go back to the session. */
        pageLeaseMs: z.number().int().min(1000).default(120_000),
        /** Most sessions in one enumeration of a consumer's sessions. */
        maxSessions: z.number().int().min(1).max(100_000).default(10_000),
        /** Hosts an EndTo may name; EnumerationEnd goes there when a context expires. Empty: EndTo unsupported. */
        endToHosts: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
    /** WS-BaseNotification: subscriptions, push delivery and pull points (see docs/operations.md). */
    notifications: z
      .strictObject({
        /** Lifetime of a subscription whose Subscribe asks for none. */
        defaultSubscriptionMs: z.number().int().min(1000).default(3_600_000),
        /** Longest lifetime granted (a longer or nil request gets this). */
        maxSubscriptionMs: z
          .number()
          .int()
          .min(1000)
          .default(7 * 86_400_000),
        maxSubscriptionsPerConsumer: z.number().int().min(0).default(100),
        maxPullPointsPerConsumer: z.number().int().min(0).default(10),
        /** A pull point nobody calls GetMessages on for this long ends. */
        pullPointIdleMs: z.number().int().min(1000).default(600_000),
        /** Most messages in one GetMessagesResponse, whatever MaximumNumber asks. */
        maxMessagesPerPull: z.number().int().min(1).max(10_000).default(1000),
        /** Undelivered messages kept per subscription or pull point; beyond it new ones are dropped and counted. */
        queueMaxMessages: z.number().int().min(1).default(100_000),
        /** A task output up to this many characters travels in its notification; a larger one waits for fetchTaskOutput. */
        inlineOutputMaxChars: z.number().int().min(0).default(65_536),
        /** Hosts and networks each consumer may name as a ConsumerReference (none: pull points only). */
        destinations: z
          .array(
            z.strictObject({
              consumer: z.string().min(1),
              hosts: z.array(z.string().min(1)).min(1),
              allowHttp: z.boolean().default(false),
            }),
          )
          .default([]),
        delivery: z
          .strictObject({
            /** Notify calls in flight per proxy, over all consumers. */
            senders: z.number().int().min(1).max(10_000).default(64),
            /** Notify calls in flight per proxy to one consumer host: one slow consumer cannot take every sender. */
            perHost: z.number().int().min(1).max(1000).default(4),
            /** Most messages in one Notify. */
            batchMax: z.number().int().min(1).max(10_000).default(100),
            timeoutMs: z.number().int().min(100).default(10_000),
            /** Backoff after a failure: a random delay up to min(retryCapMs, retryBaseMs × 2^attempts). */
            retryBaseMs: z.number().int().min(1).default(1000),
            retryCapMs: z.number().int().min(1).default(300_000),
            /** After this many failed attempts the messages go to the dead letters. */
            maxAttempts: z.number().int().min(1).default(12),
            /** A consumer that refuses a message (a 4xx other than 408/429) is given up on sooner. */
            clientErrorAttempts: z.number().int().min(1).default(3),
            /** A message older than this goes to the dead letters instead of being sent. */
            maxAgeMs: z.number().int().min(1000).default(86_400_000),
            /** How long a proxy holds a subscription it delivers for; if it dies, another takes over after this. */
            claimLeaseMs: z.number().int().min(500).default(15_000),
            /** How often each proxy looks for subscriptions with messages due. */
            pollMs: z.number().int().min(5).max(60_000).default(100),
            /** For https consumers: CA bundle to trust, and a client certificate for mutual TLS. */
            caFile: z.string().optional(),
            certFile: z.string().optional(),
            keyFile: z.string().optional(),
          })
          .prefault({}),
        watch: z
          .strictObject({
            /** Long-poll time of the grid fetch that collects a subscribed session's outputs. */
            waitMs: z.number().int().min(100).max(60_000).default(5000),
            /** How long a proxy holds a watched session; if it dies, another takes over after this. */
            leaseMs: z.number().int().min(1000).default(15_000),
            /** Sessions one proxy watches at once. */
            maxSessions: z.number().int().min(1).max(100_000).default(1000),
            /** Outputs collected per grid fetch (and so, at most, per publish). */
            batch: z.number().int().min(1).max(10_000).default(100),
          })
          .prefault({}),
      })
      .prefault({}),
    /** Usage records sent the way APEL grid sites send them (see docs/accounting.md). */
    accounting: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** The APEL Site name every record carries (as registered with the accounting receiver). */
        site: z.string().min(1).max(255).optional(),
        /** Job records as APEL individual job messages v0.3, or EMI CAR 1.2 XML. Summaries are always APEL. */
        format: z.enum(['apel', 'car']).default('apel'),
        /** This proxy's own queue directory; two proxies must never share one (a lock file enforces it). */
        spoolDir: z.string().min(1).default('var/accounting'),
        /**
         * batched: usage from the grid path is appended to the spool at once (safe against the
         * proxy being killed) and fsynced by the batch loop's next turn (a quarter second), without
         * delaying the call. each: fsynced before the call goes on (milliseconds per fetch on a
         * virtual disk), safe against the machine losing power at any moment.
         */
        fsync: z.enum(['batched', 'each']).default('batched'),
        /** Records per message (APEL takes at most 1,000). */
        recordsPerMessage: z.number().int().min(1).max(1000).default(1000),
        /** How long records wait to fill a message before a smaller one is sent. */
        batchDelayMs: z.number().int().min(0).max(3_600_000).default(10_000),
        infrastructureType: z.string().min(1).max(20).default('grid'),
        infrastructureDescription: z.string().min(1).max(100).default('symphony-soap-proxy'),
        /** Per grid cluster: the submit host name and the benchmark that normalises its CPU time. */
        clusters: z
          .array(
            z.strictObject({
              name: z.string().min(1),
              submitHost: z.string().min(1).max(255).optional(),
              serviceLevelType: z.enum(['HEPSPEC', 'HEPscore23', 'si2k']).optional(),
              serviceLevel: z.number().positive().optional(),
            }),
          )
          .default([]),
        /** Per consumer (its id, or the subject of its certificate): the VO, group and role charged. */
        consumers: z
          .array(
            z.strictObject({
              consumer: z.string().min(1),
              vo: z.string().min(1).max(255).optional(),
              voGroup: z.string().min(1).max(255).optional(),
              voRole: z.string().min(1).max(255).optional(),
              localUserId: z.string().min(1).max(255).optional(),
            }),
          )
          .default([]),
        /** The VO of a consumer not listed above (none: the record carries no VO). */
        defaultVo: z.string().min(1).max(255).optional(),
        /** How long a record's claim is kept in the shared store: longer than the grid could redeliver its output. */
        claimTtlMs: z
          .number()
          .int()
          .min(60_000)
          .default(45 * 86_400_000),
        summaries: z
          .strictObject({
            enabled: z.boolean().default(true),
            /** How often the farm's summary writer re-sends this month's totals (a summary replaces the last one). */
            intervalMs: z.number().int().min(1000).default(86_400_000),
            /** In the first days of a month, last month's final totals are sent too. */
            previousMonthDays: z.number().int().min(0).max(28).default(3),
          })
          .prefault({}),
        signing: z
          .strictObject({
            /** forge: in worker threads, RSA keys; openssl: the openssl binary (any key type); auto: forge for RSA, openssl otherwise. */
            signer: z.enum(['auto', 'forge', 'openssl']).default('auto'),
            /** Defaults to security.responseSigning's certificate and key. */
            certFile: z.string().optional(),
            keyFile: z.string().optional(),
            /** Encrypt each signed message to the receiver's certificate (openssl smime -encrypt form). */
            encryptToCertFile: z.string().optional(),
          })
          .prefault({}),
        broker: z
          .strictObject({
            /** Tried in turn; the next one on each reconnection. None: records wait in the queue. */
            hosts: z
              .array(
                z.strictObject({
                  host: z.string().min(1),
                  port: z.number().int().min(1).max(65535),
                  tls: z.boolean().default(true),
                  /** Name the broker's certificate must carry, when it is not host. */
                  servername: z.string().min(1).optional(),
                }),
              )
              .default([]),
            destination: z.string().min(1).default('/queue/global.accounting.cpu.central'),
            login: z.string().optional(),
            /** A file holding the passcode (never written into the config itself). */
            passcodeFile: z.string().optional(),
            vhost: z.string().optional(),
            /** TLS: the CA bundle that signs the brokers, and a client certificate for mutual TLS. */
            caFile: z.string().optional(),
            certFile: z.string().optional(),
            keyFile: z.string().optional(),
            receiptTimeoutMs: z.number().int().min(100).default(30_000),
            connectTimeoutMs: z.number().int().min(100).default(10_000),
            heartbeatMs: z.number().int().min(0).default(10_000),
            reconnectInitialMs: z.number().int().min(10).default(1000),
            reconnectMaxMs: z.number().int().min(10).default(60_000),
            /** Messages awaiting their RECEIPT at once. */
            inFlight: z.number().int().min(1).max(64).default(4),
          })
          .prefault({}),
      })
      .prefault({})
      .superRefine((a, ctx) => {
        if (a.enabled && !a.site)
          ctx.addIssue({ code: 'custom', path: ['site'], message: 'is required when accounting is enabled' });
        if (!!a.broker.certFile !== !!a.broker.keyFile)
          ctx.addIssue({
            code: 'custom',
            path: ['broker', 'certFile'],
            message: 'mutual TLS needs both certFile and keyFile',
          });
      }),
    lifetime: z
      .object({
        /** An unused session is closed on the grid this long after its last call; 0: never. */
        sessionIdleMs: z.number().int().min(0).default(86_400_000),
        /** An unused connection is closed on the grid this long after its last call; 0: never. */
        connectionIdleMs: z.number().int().min(0).default(86_400_000),
        /** What an idle session becomes: destroyed, or detached so that its owner may open it again. */
        onSessionExpiry: z.enum(['destroy', 'detach']).default('destroy'),
        /** Idle times per application, overriding the two above. */
        applications: z
          .array(
            z.strictObject({
              name: z.string().min(1),
              sessionIdleMs: z.number().int().min(0).optional(),
              connectionIdleMs: z.number().int().min(0).optional(),
            }),
          )
          .default([]),
        /**
         * How far ahead a client may set a resource's termination time (WS-ResourceLifetime
         * SetTerminationTime); further is refused with UnableToSetTerminationTimeFault. 0: no bound.
         */
        maxTerminationMs: z
          .number()
          .int()
          .min(0)
          .default(30 * 86_400_000),
        /**
         * Whether clients may set termination times at all; false: SetTerminationTime is refused
         * with TerminationTimeChangeRejectedFault and only the operator's idle leases apply.
         */
        clientTerminationTimes: z.boolean().default(true),
        /** How often each proxy looks for resources whose time has come. */
        sweepIntervalMs: z.number().int().min(10).max(600_000).default(1000),
        /**
         * How long a proxy holds a termination it took on; if it dies meanwhile, another proxy
         * takes it over after this. Longer than a grid call may take (the cluster's requestTimeoutMs).
         */
        claimLeaseMs: z.number().int().min(100).max(3_600_000).default(60_000),
      })
      .prefault({}),
    limits: z
      .object({
        maxDepth: z.number().int().min(4).max(1000).default(64),
        maxAttributes: z.number().int().min(1).max(10000).default(64),
        maxNameLength: z.number().int().min(16).max(10000).default(256),
        maxElements: z.number().int().min(10).default(200000),
        maxHeaders: z.number().int().min(1).max(1000).default(32),
        maxTasksPerBatch: z.number().int().min(1).max(10000).default(10000),
      })
      .prefault({}),
    log: z
      .object({
        level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const names = new Set(c.grid.clusters.map((x) => x.name));
    if (!c.grid.embedded && !names.has(c.grid.defaultCluster)) {
      ctx.addIssue({
        code: 'custom',
        path: ['grid', 'defaultCluster'],
        message: `names no cluster in grid.clusters (known: ${[...names].join(', ') || 'none'}); add one or set grid.embedded: true`,
      });
    }
  });

export type ProxyConfig = z.infer<typeof configSchema>;
export type ClusterConfig = z.infer<typeof cluster>;
export type SecurityConfig = z.infer<typeof security>;
export type TlsConfig = z.infer<typeof tls>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Tree = { [k: string]: unknown };

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node: Tree = tree;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const nextIsIndex = /^\d+$/.test(path[i + 1]!);
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = nextIsIndex ? [] : {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]!] = value;
}

/** camelCase keys from SNAKE_CASE env segments: MAX_BODY_BYTES → maxBodyBytes. */
function camel(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
}

export function applyEnv(tree: Tree, env: NodeJS.ProcessEnv): Tree {
  for (const [k, raw] of Object.entries(env)) {
    if (!k.startsWith('SSP_') || raw === undefined) continue;
    const path = k.slice(4).split('__').map(camel);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* plain string */
    }
    setPath(tree, path, value);
  }
  return tree;
}

export function parseConfig(input: unknown): ProxyConfig {
  const r = configSchema.safeParse(input);
  if (r.success) return r.data;
  throw new ConfigError(r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
}

export function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  base: Tree = {},
): ProxyConfig {
  let tree: Tree = structuredClone(base);
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError([`cannot read config file ${file}: ${(e as Error).message}`]);
    }
    const doc = YAML.parseDocument(text);
    if (doc.errors.length) throw new ConfigError(doc.errors.map((e) => `${file}: ${e.message}`));
    const fromFile = doc.toJS() as unknown;
    if (fromFile && typeof fromFile === 'object') tree = deepMerge(tree, fromFile as Tree);
  }
  const fileTree = structuredClone(tree);
  const config = parseConfig(applyEnv(tree, env));
  // zod drops keys it does not know; a misspelt key would then change nothing, silently.
  const unknown = [
    ...unknownKeys(fileTree, config),
    ...envPaths(env)
      .filter((path) => path.length > 1 && !hasPath(config, path))
      .map((path) => `${path.join('.')} (from SSP_${path.map(snake).join('__')})`),
  ];
  if (unknown.length > 0) {
    throw new ConfigError(
      unknown.map((k) => {
        const hint = suggest(k.split(' ')[0]!, config);
        return `${k}: is not a configuration key${hint ? `; did you mean ${hint}?` : ''} (README, configuration reference)`;
      }),
    );
  }
  return config;
}

/** Key paths present in what was given but absent from what the schema kept. */
function unknownKeys(given: unknown, kept: unknown, prefix = ''): string[] {
  if (Array.isArray(given) && Array.isArray(kept)) {
    return given.flatMap((g, i) => unknownKeys(g, kept[i], `${prefix}.${i}`));
  }
  if (!isTree(given) || !isTree(kept)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(given)) {
    if (v === undefined) continue;
    const path = prefix === '' ? k : `${prefix}.${k}`;
    if (!(k in kept)) out.push(path);
    else out.push(...unknownKeys(v, kept[k], path));
  }
  return out;
}

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The paths of SSP_ variables. One-segment names (SSP_PROXY1_PORT: no `__`) are left out:
 * docs/haproxy.cfg's variables share the prefix, and the proxy ignores them.
 */
function envPaths(env: NodeJS.ProcessEnv): string[][] {
  return Object.keys(env)
    .filter((k) => k.startsWith('SSP_') && env[k] !== undefined)
    .map((k) => k.slice(4).split('__').map(camel));
}

function hasPath(tree: unknown, path: string[]): boolean {
  let node: unknown = tree;
  for (const key of path) {
    if (Array.isArray(node) && /^\d+$/.test(key)) node = node[Number(key)];
    else if (isTree(node) && key in node) node = node[key];
    else return false;
  }
  return true;
}

function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

/** A known key at the same level within two edits of the unknown one. */
function suggest(path: string, config: unknown): string | undefined {
  const parts = path.split('.');
  const last = parts.pop()!;
  let node: unknown = config;
  for (const key of parts)
    node = Array.isArray(node) ? node[Number(key)] : isTree(node) ? node[key] : undefined;
  if (!isTree(node)) return undefined;
  const near = Object.keys(node).find((k) => editDistance(k.toLowerCase(), last.toLowerCase()) <= 2);
  return near === undefined ? undefined : [...parts, near].join('.');
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(up + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

function deepMerge(a: Tree, b: Tree): Tree {
  const out: Tree = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const av = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && av && typeof av === 'object' && !Array.isArray(av)
        ? deepMerge(av as Tree, v as Tree)
        : v;
  }
  return out;
}
