#if Hummingbird
print("with trait")
#else
print("hummingbird-example needs the Hummingbird trait: swift run --traits Hummingbird hummingbird-example")
#endif
