// npm etcd3 (grpc-js) against one endpoint: KV, prefix reads, delete, if/then/else txn.
// argv: endpoints. Prints one JSON document with what the client returned.
'use strict';
const { Etcd3 } = require('etcd3');

(async () => {
  const client = new Etcd3({ hosts: process.argv[2].split(',') });
  const out = {};
  try {
    out.put1 = (await client.put('js/a').value('1').exec()).header.revision;
    out.put2 = (await client.put('js/b').value('2').exec()).header.revision;
    out.put3 = (await client.put('other').value('3').exec()).header.revision;
    const prev = await client.put('js/a').value('1b').getPrevious();
    out.prev = prev ? { key: prev.key.toString(), value: prev.value.toString(),
      version: prev.version, mod_revision: prev.mod_revision } : null;
    out.get = await client.get('js/a').string();
    out.missing = await client.get('nope').string();
    out.getAll = await client.getAll().prefix('js/').strings();
    out.keys = await client.getAll().keys();
    out.count = await client.getAll().prefix('js/').count();
    const r = await client.get('js/a').exec();
    out.kv = { create_revision: r.kvs[0].create_revision, mod_revision: r.kvs[0].mod_revision,
      version: r.kvs[0].version, lease: r.kvs[0].lease, header: r.header };
    const t1 = await client.if('js/a', 'Value', '==', '1b')
      .then(client.put('js/a').value('txn'))
      .else(client.get('js/b')).commit();
    out.txn1 = { succeeded: t1.succeeded, revision: t1.header.revision,
      responses: t1.responses.map(x => x.response) };
    const t2 = await client.if('js/a', 'Version', '>', 10)
      .then(client.put('js/a').value('never'))
      .else(client.get('js/b')).commit();
    out.txn2 = { succeeded: t2.succeeded, revision: t2.header.revision,
      value: t2.responses[0].response_range.kvs[0].value.toString() };
    out.del = (await client.delete().key('other').exec()).deleted;
    out.delPrefix = (await client.delete().prefix('js/').exec()).deleted;
    out.after = await client.getAll().keys();
  } finally {
    client.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
