/**
 * The operation table: one row per WSDL operation, with its port type, its handler and the
 * traits the pipeline's stages read (see pipeline/operation.ts for what each trait means).
 * Adding an operation is one row here, a handler, and the WSDL/XSD; start-up refuses a WSDL
 * operation without a row and a row without a WSDL operation.
 */
import { always, never, operation, whenKeyed, type OperationSpec } from '../pipeline/operation';
import type { DecodedFields } from '../soap/schema';
import { connectionHandlers } from './connection';
import type { OperationDeps } from './deps';
import { loadProxyContract } from './contract';
import { ROOT } from '../paths';
import type { FetchTaskOutputArgs } from './messages';
import { sessionHandlers } from './session';
import { taskInputHandlers } from './task-input';
import { taskOutputHandlers } from './task-output';
import { resourceHandlers } from '../resources/handlers';
import { enumerationHandlers } from '../resources/enumeration';
import type { PageAnswer } from '../resources/enumeration-codecs';
import type { TaskOutputItem } from '../pipeline/operation';
import { notificationHandlers, type NotificationLimits } from '../notifications/handlers';
import { Destinations } from '../notifications/destinations';

/** Without configured notifications (embedders, tests): pull points only, modest bounds. */
const DEFAULT_NOTIFICATION_LIMITS: NotificationLimits = {
  defaultSubscriptionMs: 3_600_000,
  maxSubscriptionMs: 7 * 86_400_000,
  maxSubscriptionsPerConsumer: 100,
  maxPullPointsPerConsumer: 10,
  pullPointIdleMs: 600_000,
  maxMessagesPerPull: 1000,
  queueMaxMessages: 100_000,
};

export type OperationTable = Record<string, OperationSpec<DecodedFields, unknown>>;

/** Without a contract's writer (embedders, tests), task outputs in enumeration pages use one loaded on first use. */
function outputWriter(deps: OperationDeps): (item: TaskOutputItem) => string {
  if (deps.encodeOutput) return deps.encodeOutput;
  let write: ((item: TaskOutputItem) => string) | undefined;
  return (item) => (write ??= loadProxyContract(ROOT).encodeOutput)(item);
}

export function operationTable(deps: OperationDeps): OperationTable {
  const connection = connectionHandlers(deps);
  const session = sessionHandlers(deps);
  const input = taskInputHandlers(deps);
  const output = taskOutputHandlers(deps);
  const resource = resourceHandlers(deps);
  const enumeration = enumerationHandlers(deps, outputWriter(deps));
  const sources = ['EnumerationSource2004PortType', 'EnumerationSource2011PortType'] as const;
  const pageOutputs = (r: PageAnswer): TaskOutputItem[] => r.outputs ?? [];
  // Sessions and connections as WS-Resources share their operations: the address tells which.
  const resources = ['SessionResourcePortType', 'ConnectionResourcePortType'] as const;
  const reading = { remembered: false, rerunOnResend: always };
  const wsn = notificationHandlers({
    store: deps.store,
    lifetimes: deps.lifetimes,
    destinations: deps.notifications?.destinations ?? new Destinations([]),
    limits: deps.notifications?.limits ?? DEFAULT_NOTIFICATION_LIMITS,
    ...(deps.publicAddress ? { publicAddress: deps.publicAddress } : {}),
  });
  return {
    // Connection: a second connect would open a second grid connection, so a resend is refused.
    connect: operation({
      portType: 'ConnectionPortType',
      handler: connection.connect,
      traits: { remembered: true, rerunOnResend: never },
    }),
    closeConnection: operation({
      portType: 'ConnectionPortType',
      handler: connection.closeConnection,
      traits: { remembered: true, rerunOnResend: whenKeyed, releases: true },
    }),

    // Session
    createSession: operation({
      portType: 'SessionPortType',
      handler: session.createSession,
      traits: { remembered: true, rerunOnResend: never },
    }),
    openSession: operation({
      portType: 'SessionPortType',
      handler: session.openSession,
      traits: { remembered: true, rerunOnResend: never },
    }),
    closeSession: operation({
      portType: 'SessionPortType',
      handler: session.closeSession,
      traits: { remembered: true, rerunOnResend: whenKeyed, releases: true },
    }),
    getSessionStatus: operation({
      portType: 'SessionPortType',
      handler: session.getSessionStatus,
      traits: { remembered: false, rerunOnResend: always },
    }),

    // TaskInput: the grid de-duplicates a keyed send (submit_key), so a keyed resend may run again.
    sendTaskInput: operation({
      portType: 'TaskInputPortType',
      handler: input.sendTaskInput,
      traits: {
        remembered: true,
        rerunOnResend: whenKeyed,
        taskInputs: (a) => [a.taskSubmissionAttributes.taskInput],
      },
    }),
    sendTaskInputBatch: operation({
      portType: 'TaskInputPortType',
      handler: input.sendTaskInputBatch,
      traits: {
        remembered: true,
        rerunOnResend: whenKeyed,
        taskInputs: (a) => a.taskSubmissionAttributes.map((t) => t.taskInput),
      },
    }),

    // TaskOutput: a leased fetch with a key answers its repeat from the lease; any other fetch
    // would take more outputs, so only that one may be resent.
    fetchTaskOutput: operation({
      portType: 'TaskOutputPortType',
      handler: output.fetchTaskOutput,
      traits: {
        remembered: false,
        rerunOnResend: (a: FetchTaskOutputArgs, keyed) => keyed && a.leaseMillis !== undefined,
        taskOutputs: (r) => r.taskOutput,
      },
    }),
    acknowledgeTaskOutput: operation({
      portType: 'TaskOutputPortType',
      handler: output.acknowledgeTaskOutput,
      traits: { remembered: false, rerunOnResend: always },
    }),

    // WS-ResourceProperties: reads, safe to repeat.
    GetResourcePropertyDocument: operation({
      portType: resources,
      handler: resource.GetResourcePropertyDocument,
      traits: reading,
    }),
    GetResourceProperty: operation({
      portType: resources,
      handler: resource.GetResourceProperty,
      traits: reading,
    }),
    GetMultipleResourceProperties: operation({
      portType: resources,
      handler: resource.GetMultipleResourceProperties,
      traits: reading,
    }),
    QueryResourceProperties: operation({
      portType: resources,
      handler: resource.QueryResourceProperties,
      traits: reading,
    }),

    // WS-ResourceLifetime. The resource is named outside the signed Body (in the address), and a
    // Destroy body is the same for every resource: a signed resend is answered from the
    // remembered answer, never run again, so a captured message cannot end another resource.
    Destroy: operation({
      portType: resources,
      handler: resource.Destroy,
      traits: { remembered: true, rerunOnResend: never, releases: true },
    }),
    SetTerminationTime: operation({
      portType: resources,
      handler: resource.SetTerminationTime,
      traits: { remembered: true, rerunOnResend: never },
    }),

    // WS-Enumeration. A context names its page, so a repeated Pull gets the same page: repeats
    // need no remembered answer. A repeated Enumerate starts another context, whose first
    // page (if any) the lost one's lease hands back in time.
    Enumerate: operation({
      portType: sources,
      handler: enumeration.Enumerate,
      traits: { remembered: false, rerunOnResend: always, taskOutputs: pageOutputs },
    }),
    Pull: operation({
      portType: 'EnumerationSource2004PortType',
      handler: enumeration.Pull,
      traits: { remembered: false, rerunOnResend: always, taskOutputs: pageOutputs },
    }),
    // WS-Enumeration's and WS-BaseNotification's Renew share the name; the Body's element tells
    // them apart (each decodes to its own shape), and so does the port type it belongs to.
    Renew: operation({
      portType: [...sources, 'SubscriptionManagerPortType'],
      handler: (args: DecodedFields, ctx): Promise<unknown> =>
        ctx.operation.portType === 'SubscriptionManagerPortType'
          ? wsn.Renew(args as unknown as Parameters<typeof wsn.Renew>[0], ctx)
          : enumeration.Renew(args as unknown as Parameters<typeof enumeration.Renew>[0], ctx),
      traits: reading,
    }),
    GetStatus: operation({ portType: sources, handler: enumeration.GetStatus, traits: reading }),
    Release: operation({
      portType: sources,
      handler: enumeration.Release,
      traits: { remembered: false, rerunOnResend: always, releases: true },
    }),

    // WS-BaseNotification. A Subscribe creates a subscription each time it runs, so its answer is
    // remembered and a signed resend without a client key is refused, like connect.
    Subscribe: operation({
      portType: 'NotificationProducerPortType',
      handler: wsn.Subscribe,
      traits: { remembered: true, rerunOnResend: never },
    }),
    Unsubscribe: operation({
      portType: 'SubscriptionManagerPortType',
      handler: wsn.Unsubscribe,
      traits: { remembered: true, rerunOnResend: never, releases: true },
    }),
    PauseSubscription: operation({
      portType: 'SubscriptionManagerPortType',
      handler: wsn.PauseSubscription,
      traits: reading,
    }),
    ResumeSubscription: operation({
      portType: 'SubscriptionManagerPortType',
      handler: wsn.ResumeSubscription,
      traits: reading,
    }),
    CreatePullPoint: operation({
      portType: 'CreatePullPointPortType',
      handler: wsn.CreatePullPoint,
      traits: { remembered: true, rerunOnResend: never },
    }),
    // Acknowledges the previous batch: a resend would acknowledge one its sender never saw.
    GetMessages: operation({
      portType: 'PullPointPortType',
      handler: wsn.GetMessages,
      traits: { remembered: false, rerunOnResend: (a: { ack?: number }) => a.ack !== undefined },
    }),
    DestroyPullPoint: operation({
      portType: 'PullPointPortType',
      handler: wsn.DestroyPullPoint,
      traits: { remembered: true, rerunOnResend: never, releases: true },
    }),
  };
}
