/**
 * A stable, made-up "memory address" per object for the reprs Python prints
 * with one (`<queue.Queue object at 0x7f…>`): clients only ever show it.
 */
const addresses = new WeakMap<object, string>();
let next = 0x7f0000001000;

export function objectAddress(obj: object): string {
  let address = addresses.get(obj);
  if (address === undefined) {
    address = `0x${(next += 0x40).toString(16)}`;
    addresses.set(obj, address);
  }
  return address;
}
