// The vendor's side: a socket.io-client 0.9 subscriber, as onlinePBX's published library uses.
var io = require('socket.io-client');
var url = process.argv[2], key = process.argv[3], domain = process.argv[4], want = parseInt(process.argv[5]);
var socket = io.connect(url, {query: 'key=' + key + '&domain=' + domain, transports: ['websocket'],
                              'force new connection': true, 'reconnect': false});
var seen = 0;
socket.on('connect', function () {
  socket.emit('subscribe', {events: {calls: true, blf: true}, callback_hash: 'h1'});
});
socket.on('callback', function (d) { console.log('callback ' + JSON.stringify(d)); });
['channel_create', 'channel_answer', 'channel_bridge', 'channel_destroy', 'blf'].forEach(function (name) {
  socket.on(name, function (d) {
    console.log('event ' + name + ' ' + (d.uuid || d.aleg_uuid));
    if (++seen >= want) { socket.disconnect(); process.exit(0); }
  });
});
socket.on('error', function (e) { console.log('error ' + e); process.exit(3); });
setTimeout(function () { console.log('timeout after ' + seen); process.exit(2); }, 10000);
