/**
 * Everything a proxy must remember between calls, behind one interface so that a shared
 * store (Redis) can replace the in-process one and let any proxy continue any client's work.
 */
export interface ConnectionRecord {
  cluster: string;
  owner: string;
  application: string;
}

export interface SessionRecord {
  cluster: string;
  owner: string;
  connectionId: string;
}

export interface StateStore {
  getConnection(id: string): Promise<ConnectionRecord | undefined>;
  putConnection(id: string, rec: ConnectionRecord): Promise<void>;
  deleteConnection(id: string): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  putSession(id: string, rec: SessionRecord): Promise<void>;
  deleteSession(id: string): Promise<void>;
  /**
   * Records `key` for `ttlMs` and resolves true, or resolves false when it is already
   * recorded: the WS-Security replay cache, shared by all proxies once the store is.
   */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}
