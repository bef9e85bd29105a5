/**
 * @provisio/codec-mqtt — Sans-IO MQTT 3.1.1 session of the DPS device dialect (and later the hub's), on mqtt-packet
 */
export {}
