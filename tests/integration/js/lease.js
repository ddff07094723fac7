// npm etcd3 leases: grant, attach keys, keepalive beyond the TTL, revoke, and error classes.
// argv: endpoints. Prints one JSON document.
'use strict';
const etcd3 = require('etcd3');

const errName = async (p) => {
  try { await p; return null; } catch (e) { return { cls: e.constructor.name, message: e.message }; }
};

(async () => {
  const client = new etcd3.Etcd3({ hosts: process.argv[2].split(',') });
  const out = {};
  try {
    // ttl 2 s with the client's automatic keepalive (every ttl/3): the key outlives 3 TTLs
    const lease = client.lease(2);
    out.id = await lease.grant();
    await lease.put('lk').value('v').exec();
    let keepalives = 0;
    lease.on('keepaliveSucceeded', () => { keepalives += 1; });
    await new Promise((resolve) => {
      const deadline = Date.now() + 30000;
      const check = () => (keepalives >= 5 || Date.now() > deadline ? resolve() : setTimeout(check, 50));
      check();
    });
    out.keepalives = keepalives;
    out.valueAfter = await client.get('lk').string();
    const ttl = await client.leaseClient.leaseTimeToLive({ ID: out.id, keys: true });
    out.ttl = { TTL: ttl.TTL, grantedTTL: ttl.grantedTTL, keys: ttl.keys.map(String) };
    await lease.revoke();
    out.afterRevoke = await client.get('lk').string();
    // errors
    out.putUnknownLease = await errName(client.put('x').value('y').lease('12345').exec());
    out.compacted = await errName((async () => {
      await client.put('c').value('1').exec();
      const r = await client.put('c').value('2').exec();
      await client.get('c').exec();
      await client.kv.compact({ revision: r.header.revision });
      return client.get('c').revision(Number(r.header.revision) - 1).exec();
    })());
    out.future = await errName(client.get('c').revision(100000).exec());
    const gone = client.lease(30, { autoKeepAlive: false });
    await gone.grant();
    await gone.revoke();
    out.keepaliveRevoked = await errName(gone.keepaliveOnce());
  } finally {
    client.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
