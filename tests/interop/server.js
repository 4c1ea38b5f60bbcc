// A real socket.io 0.9 server standing in for onlinePBX API 2.0 (interoperability test).
// usage: node server.js PORT KEY DOMAIN ; prints "listening" when ready, then one event per subscriber.
var server = require('http').createServer();
var io = require('socket.io').listen(server, {log: false});
var key = process.argv[3], domain = process.argv[4];
io.set('authorization', function (hs, cb) {
  cb(null, hs.query.key === key && hs.query.domain === domain);
});
io.sockets.on('connection', function (socket) {
  socket.on('subscribe', function (data) {
    socket.emit('callback', {hash: data.callback_hash, data: {events: data.events}});
    socket.emit('channel_create', {uuid: 'leg-a', direction: 'inbound', created_stamp: 1764000000,
      caller_number: '84951234567', destination_number: '74950001122'});
  });
});
// Ready only once the port is bound: a client that connects before would be refused.
server.listen(parseInt(process.argv[2]), '127.0.0.1', function () { console.log('listening'); });
