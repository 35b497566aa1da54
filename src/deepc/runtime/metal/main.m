// main.m: runs a Metal bundle compiled by deepc on raw input files, writes raw outputs.
// NOT RUN ON APPLE HARDWARE: deepc was developed on Linux, where no Metal compiler or device
// exists; this program was written against Apple's Metal API documentation only.
//
//   sh build.sh     (xcrun metal + metallib for lib/kernels.metallib, clang for run_model)
//   ./run_model [-n RUNS] BUNDLE INPUT... OUTPUT...
//
// BUNDLE is the unpacked bundle's directory: params.bin, lib/kernels.metallib, lib/plan.txt
// (arena size, where params, inputs and outputs lie in the arena, then each launch: kernel,
// threadgroups xyz, threads per threadgroup xyz, argument count, argument byte offsets).
// Every argument is the one arena buffer bound at its offset. Files hold raw C-order elements.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(NSString *message) {
    fprintf(stderr, "run_model: %s\n", message.UTF8String);
    exit(1);
}

static NSData *readFile(NSString *path) {
    NSData *data = [NSData dataWithContentsOfFile:path];
    if (data == nil) fail([NSString stringWithFormat:@"cannot read %@", path]);
    return data;
}

int main(int argc, const char **argv) {
    @autoreleasepool {
        int runs = 1, first = 1;
        if (argc > 2 && strcmp(argv[1], "-n") == 0) { runs = atoi(argv[2]); first = 3; }
        if (argc <= first) fail(@"usage: run_model [-n RUNS] BUNDLE INPUT... OUTPUT...");
        NSString *root = [NSString stringWithUTF8String:argv[first]];
        NSString *planText = [NSString stringWithContentsOfFile:[root stringByAppendingPathComponent:@"lib/plan.txt"]
                                                       encoding:NSUTF8StringEncoding error:nil];
        if (planText == nil) fail(@"cannot read lib/plan.txt");

        id<MTLDevice> device = MTLCreateSystemDefaultDevice();
        if (device == nil) fail(@"no Metal device");
        NSError *error = nil;
        NSURL *libURL = [NSURL fileURLWithPath:[root stringByAppendingPathComponent:@"lib/kernels.metallib"]];
        id<MTLLibrary> library = [device newLibraryWithURL:libURL error:&error];
        if (library == nil) fail([NSString stringWithFormat:@"cannot load lib/kernels.metallib (run build.sh): %@", error]);

        NSUInteger arenaBytes = 0, paramsOffset = 0;
        NSMutableArray<NSArray<NSNumber *> *> *inputs = [NSMutableArray array], *outputs = [NSMutableArray array];
        NSMutableArray<NSArray *> *launches = [NSMutableArray array];
        for (NSString *line in [planText componentsSeparatedByString:@"\n"]) {
            NSArray<NSString *> *w = [line componentsSeparatedByCharactersInSet:NSCharacterSet.whitespaceCharacterSet];
            if (w.count < 2) continue;
            if ([w[0] isEqualToString:@"arena"]) arenaBytes = (NSUInteger)w[1].longLongValue;
            else if ([w[0] isEqualToString:@"params"]) paramsOffset = (NSUInteger)w[1].longLongValue;
            else if ([w[0] isEqualToString:@"input"]) [inputs addObject:@[@(w[1].longLongValue), @(w[2].longLongValue)]];
            else if ([w[0] isEqualToString:@"output"]) [outputs addObject:@[@(w[1].longLongValue), @(w[2].longLongValue)]];
            else if ([w[0] isEqualToString:@"launch"]) [launches addObject:w];
        }
        if (argc - first - 1 != (int)(inputs.count + outputs.count))
            fail([NSString stringWithFormat:@"the model takes %lu input and %lu output files",
                  (unsigned long)inputs.count, (unsigned long)outputs.count]);

        // shared storage: the CPU writes params and inputs and reads outputs in place
        id<MTLBuffer> arena = [device newBufferWithLength:MAX(arenaBytes, 1) options:MTLResourceStorageModeShared];
        char *base = (char *)arena.contents;
        NSData *params = readFile([root stringByAppendingPathComponent:@"params.bin"]);
        memcpy(base + paramsOffset, params.bytes, params.length);
        for (NSUInteger k = 0; k < inputs.count; ++k) {
            NSData *data = readFile([NSString stringWithUTF8String:argv[first + 1 + k]]);
            if (data.length != inputs[k][1].unsignedLongValue) fail(@"an input file has the wrong size");
            memcpy(base + inputs[k][0].unsignedLongValue, data.bytes, data.length);
        }

        NSMutableDictionary<NSString *, id<MTLComputePipelineState>> *pipelines = [NSMutableDictionary dictionary];
        id<MTLCommandQueue> queue = [device newCommandQueue];
        for (int r = 0; r < runs; ++r) {
            NSDate *start = [NSDate date];
            id<MTLCommandBuffer> commands = [queue commandBuffer];
            id<MTLComputeCommandEncoder> encoder = [commands computeCommandEncoder];
            for (NSArray<NSString *> *w in launches) {
                NSString *name = w[1];
                id<MTLComputePipelineState> pipeline = pipelines[name];
                if (pipeline == nil) {
                    id<MTLFunction> fn = [library newFunctionWithName:name];
                    if (fn == nil) fail([NSString stringWithFormat:@"no kernel %@ in the library", name]);
                    pipeline = [device newComputePipelineStateWithFunction:fn error:&error];
                    if (pipeline == nil) fail([NSString stringWithFormat:@"kernel %@: %@", name, error]);
                    pipelines[name] = pipeline;
                }
                [encoder setComputePipelineState:pipeline];
                int nargs = w[8].intValue;
                for (int a = 0; a < nargs; ++a)
                    [encoder setBuffer:arena offset:(NSUInteger)w[9 + a].longLongValue atIndex:(NSUInteger)a];
                [encoder dispatchThreadgroups:MTLSizeMake(w[2].integerValue, w[3].integerValue, w[4].integerValue)
                        threadsPerThreadgroup:MTLSizeMake(w[5].integerValue, w[6].integerValue, w[7].integerValue)];
            }
            [encoder endEncoding];
            [commands commit];
            [commands waitUntilCompleted];
            if (commands.error != nil) fail([NSString stringWithFormat:@"the kernels failed: %@", commands.error]);
            printf("run %d %.3f ms\n", r, -[start timeIntervalSinceNow] * 1e3);
        }
        for (NSUInteger k = 0; k < outputs.count; ++k) {
            NSData *data = [NSData dataWithBytes:base + outputs[k][0].unsignedLongValue
                                          length:outputs[k][1].unsignedLongValue];
            NSString *path = [NSString stringWithUTF8String:argv[first + 1 + inputs.count + k]];
            if (![data writeToFile:path atomically:NO]) fail([NSString stringWithFormat:@"cannot write %@", path]);
        }
    }
    return 0;
}
