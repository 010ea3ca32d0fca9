/** Framing and the Connection class. */
export { Connection } from './connection.js';
export type { ConnectionMode, ConnectionOptions, RecvOptions } from './connection.js';
export { FrameDecoder } from './frame-decoder.js';
export type { FrameHandler } from './frame-decoder.js';
