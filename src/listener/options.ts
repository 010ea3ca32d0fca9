import { type Address, addressType, checkFamily, type Family } from './address.js';

/**
 * The transport a Listener or a Client uses, checked as Python checks it:
 * `family` must be a family this platform has, the address must be one of
 * it, and `tls` is only for `AF_INET`. The caller picks `family` (the
 * option, else the address's own).
 */
export function transportFamily(address: Address, family: unknown, tls: unknown): Family {
  const checked = checkFamily(family);
  if (addressType(address) !== checked) throw new TypeError(`address ${JSON.stringify(address)} is not an ${checked} address`);
  if (tls !== undefined && checked !== 'AF_INET') throw new TypeError('tls is only available with AF_INET addresses');
  return checked;
}
