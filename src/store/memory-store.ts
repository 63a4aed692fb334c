/** The single-process store: plain maps. Records live until closed, like the grid's. */
import type { ConnectionRecord, SessionRecord, StateStore } from './store';

export class MemoryStore implements StateStore {
  private readonly connections = new Map<string, ConnectionRecord>();
  private readonly sessions = new Map<string, SessionRecord>();

  async getConnection(id: string): Promise<ConnectionRecord | undefined> {
    return this.connections.get(id);
  }
  async putConnection(id: string, rec: ConnectionRecord): Promise<void> {
    this.connections.set(id, rec);
  }
  async deleteConnection(id: string): Promise<void> {
    this.connections.delete(id);
  }
  async getSession(id: string): Promise<SessionRecord | undefined> {
    return this.sessions.get(id);
  }
  async putSession(id: string, rec: SessionRecord): Promise<void> {
    this.sessions.set(id, rec);
  }
  async deleteSession(id: string): Promise<void> {
    this.sessions.delete(id);
  }
  async close(): Promise<void> {
    this.connections.clear();
    this.sessions.clear();
  }
}
