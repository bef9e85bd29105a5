/**
 * @provisio/codec-amqp — Sans-IO AMQP 1.0 session of the DPS device dialect: SASL PLAIN/TPM/none, links, request/response, on rhea's types and framing
 */
export {}
