/**
 * The NotificationStore half of a StateStore, handed to the store's own implementation
 * (memory-notifications.ts, redis-notifications.ts): one copy of the delegation for both stores.
 */
import type { NotificationStore as N } from './notification-store';

export abstract class DelegatedNotifications implements N {
  protected abstract readonly notifications: N;

  putSubscription(...a: Parameters<N['putSubscription']>): ReturnType<N['putSubscription']> {
    return this.notifications.putSubscription(...a);
  }
  getSubscription(...a: Parameters<N['getSubscription']>): ReturnType<N['getSubscription']> {
    return this.notifications.getSubscription(...a);
  }
  renewSubscription(...a: Parameters<N['renewSubscription']>): ReturnType<N['renewSubscription']> {
    return this.notifications.renewSubscription(...a);
  }
  setSubscriptionPaused(
    ...a: Parameters<N['setSubscriptionPaused']>
  ): ReturnType<N['setSubscriptionPaused']> {
    return this.notifications.setSubscriptionPaused(...a);
  }
  deleteSubscription(...a: Parameters<N['deleteSubscription']>): ReturnType<N['deleteSubscription']> {
    return this.notifications.deleteSubscription(...a);
  }
  subscriptionsOf(...a: Parameters<N['subscriptionsOf']>): ReturnType<N['subscriptionsOf']> {
    return this.notifications.subscriptionsOf(...a);
  }
  countSubscriptions(...a: Parameters<N['countSubscriptions']>): ReturnType<N['countSubscriptions']> {
    return this.notifications.countSubscriptions(...a);
  }
  publish(...a: Parameters<N['publish']>): ReturnType<N['publish']> {
    return this.notifications.publish(...a);
  }
  claimDeliveries(...a: Parameters<N['claimDeliveries']>): ReturnType<N['claimDeliveries']> {
    return this.notifications.claimDeliveries(...a);
  }
  peekQueue(...a: Parameters<N['peekQueue']>): ReturnType<N['peekQueue']> {
    return this.notifications.peekQueue(...a);
  }
  settleDelivery(...a: Parameters<N['settleDelivery']>): ReturnType<N['settleDelivery']> {
    return this.notifications.settleDelivery(...a);
  }
  listDeadLetters(...a: Parameters<N['listDeadLetters']>): ReturnType<N['listDeadLetters']> {
    return this.notifications.listDeadLetters(...a);
  }
  putPullPoint(...a: Parameters<N['putPullPoint']>): ReturnType<N['putPullPoint']> {
    return this.notifications.putPullPoint(...a);
  }
  getPullPoint(...a: Parameters<N['getPullPoint']>): ReturnType<N['getPullPoint']> {
    return this.notifications.getPullPoint(...a);
  }
  getMessages(...a: Parameters<N['getMessages']>): ReturnType<N['getMessages']> {
    return this.notifications.getMessages(...a);
  }
  deletePullPoint(...a: Parameters<N['deletePullPoint']>): ReturnType<N['deletePullPoint']> {
    return this.notifications.deletePullPoint(...a);
  }
  countPullPoints(...a: Parameters<N['countPullPoints']>): ReturnType<N['countPullPoints']> {
    return this.notifications.countPullPoints(...a);
  }
  setWatch(...a: Parameters<N['setWatch']>): ReturnType<N['setWatch']> {
    return this.notifications.setWatch(...a);
  }
  claimWatches(...a: Parameters<N['claimWatches']>): ReturnType<N['claimWatches']> {
    return this.notifications.claimWatches(...a);
  }
  renewWatch(...a: Parameters<N['renewWatch']>): ReturnType<N['renewWatch']> {
    return this.notifications.renewWatch(...a);
  }
}
