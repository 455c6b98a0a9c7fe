// The Java side of `scripts/streams-bench`: Apache Kafka Streams running the same topology as
// `examples/streams_bench.rs` over the same pre-produced input. The Rust harness times both sides the same way:
// from the moment the application is started (this program prints "starting" just before `start()`) until a
// read_committed consumer has seen the expected number of records on the output topics. It then writes "stop" on
// this program's stdin.
//
// Args: bootstrap application-id server-metrics|count at_least_once|exactly_once_v2 state-dir input-topic
//       output-topic... (server-metrics: cpu, memory, alerts; count: one)
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

public class StreamsBench {
    /** One metric as collected from a server (the Rust sample's `Metric`). */
    public static class Metric {
        public String hostname;
        public long timestamp;
        public String type;
        public double value;
    }

    /** What the alert topic receives (the Rust sample's `CpuAlert`). */
    public static class CpuAlert {
        public String hostname;
        public long timestamp;

        public CpuAlert(String hostname, long timestamp) {
            this.hostname = hostname;
            this.timestamp = timestamp;
        }
    }

    static final ObjectMapper JSON =
        new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    static <T> Serde<T> json(Class<T> type) {
        Serializer<T> ser = (topic, v) -> {
            try {
                return v == null ? null : JSON.writeValueAsBytes(v);
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        };
        Deserializer<T> de = (topic, bytes) -> {
            try {
                return bytes == null ? null : JSON.readValue(bytes, type);
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        };
        return Serdes.serdeFrom(ser, de);
    }

    /** The book's 5.2 topology, as `samples/server-metrics/src/topology.rs` writes it in Rust. */
    static Topology serverMetrics(String in, String cpuOut, String memoryOut, String alertsOut) {
        Serde<Metric> metricSerde = json(Metric.class);
        StreamsBuilder b = new StreamsBuilder();
        Map<String, KStream<String, Metric>> byKind = b
            // Event time is when the metric was measured.
            .stream(in, Consumed.with(Serdes.String(), metricSerde)
                .withTimestampExtractor((r, partitionTime) -> ((Metric) r.value()).timestamp))
            .split(Named.as("metrics-"))
            .branch((k, m) -> m.type.equals("cpu"), Branched.as("cpu"))
            .branch((k, m) -> m.type.equals("memory"), Branched.as("memory"))
            .noDefaultBranch();
        KStream<String, Metric> cpu = byKind.get("metrics-cpu");
        cpu.to(cpuOut, Produced.with(Serdes.String(), metricSerde));
        byKind.get("metrics-memory").to(memoryOut, Produced.with(Serdes.String(), metricSerde));
        cpu.filter((k, m) -> m.value > 50.0)
            .map((k, m) -> KeyValue.pair(m.hostname, new CpuAlert(m.hostname, m.timestamp)))
            .to(alertsOut, Produced.with(Serdes.String(), json(CpuAlert.class)));
        return b.build();
    }

    /** Count per key into an in-memory store (changelog on), every update to the output topic. */
    static Topology count(String in, String out) {
        StreamsBuilder b = new StreamsBuilder();
        b.stream(in, Consumed.with(Serdes.String(), Serdes.String()))
            .groupByKey()
            .count(Materialized.<String, Long>as(Stores.inMemoryKeyValueStore("counts")))
            .toStream()
            .to(out, Produced.with(Serdes.String(), Serdes.Long()));
        return b.build();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], app = args[1], topology = args[2], guarantee = args[3], stateDir = args[4];
        String in = args[5];
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        // spate-streams has no record cache: every update is forwarded, so turn Kafka's off to do the same work.
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        Topology t = topology.equals("count") ? count(in, args[6]) : serverMetrics(in, args[6], args[7], args[8]);
        KafkaStreams streams = new KafkaStreams(t, p);
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("error=" + e);
            System.out.flush();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        System.out.println("starting");
        System.out.flush();
        streams.start();
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = stdin.readLine()) != null && !line.equals("stop")) {
            // Only "stop" (or the harness going away) ends the run.
        }
        streams.close(Duration.ofSeconds(30));
        System.out.println("closed");
    }
}
