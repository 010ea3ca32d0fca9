/** Framing and the Connection class. */
export { Connection } from './connection.js';
export type { CloseOptions, ConnectionOptions, RecvOptions, RecvValueOptions } from './connection.js';
