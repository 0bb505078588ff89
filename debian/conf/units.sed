# Turns the units in systemd/ (written for make install into /usr/local)
# into the package's: programs under /usr, settings from
# /etc/litepush/litepush.env, litepush-ws on a unix socket.
1i # Debian package: programs under /usr, settings in /etc/litepush/litepush.env
1i # (the notes on make install and /usr/local below do not apply).
s|/usr/local/|/usr/|g
/^\[Service\]/a EnvironmentFile=/etc/litepush/litepush.env
s|^\(ExecStart=/usr/lib/cgi-bin/litepush.fcgi\) --db [^ ]*$|\1 $LITEPUSH_FCGI_OPTS|
s|^\(ExecStart=/usr/bin/litepush-ws\) --db [^ ]* --listen [^ ]*$|\1 --listen /run/litepush/ws.sock $LITEPUSH_WS_OPTS|
s|^\(ExecStart=/usr/bin/litepush-prune\) --db [^ ]* .*$|\1 $LITEPUSH_PRUNE_OPTS|
/^ExecStart=\/usr\/bin\/litepush-ws/a RuntimeDirectory=litepush\nRuntimeDirectoryPreserve=yes
