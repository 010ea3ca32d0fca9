/** Framing and the Connection class. */
export { Connection } from './connection.js';
export type { BatchesOptions, ByteBatchesOptions, CloseOptions, ConnectionOptions, RecvManyOptions, RecvOptions, RecvValueManyOptions, RecvValueOptions } from './connection.js';
